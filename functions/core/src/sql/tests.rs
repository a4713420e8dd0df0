use super::*;

fn query(sql: &str) -> (String, Vec<Table>) {
    match rewrite(sql).unwrap() {
        Statement::Query { sql, tables, .. } => (sql, tables),
        other => panic!("{other:?}"),
    }
}

fn files(stage: &str, path: &str) -> TableSource {
    TableSource::Files(StageRef {
        stage: stage.into(),
        path: path.into(),
        files: None,
        pattern: None,
        file_format: None,
    })
}

#[test]
fn syntax_errors_point_at_what_the_user_wrote() {
    let e = check_syntax(&rewrite("SELECT * FROM @s/dir/x.parquet WHERE LIMIT 1").unwrap())
        .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::InvalidQuery);
    assert!(e.message().starts_with("syntax error: "), "{e}");
    // `1` is the 44th character of the query as written.
    assert!(e.message().contains("Column: 44"), "{e}");
    assert!(
        check_syntax(&rewrite("SELECT a FROM '@s/é/x.csv' t, @s/y (PATTERN => 'z')").unwrap())
            .is_ok()
    );
    assert!(check_syntax(&rewrite("LIST @s").unwrap()).is_ok());
}

#[test]
fn seed_query() {
    let (sql, tables) = query("SELECT * FROM @databend_test/test.parquet LIMIT 1");
    assert_eq!(sql, "SELECT * FROM __xstage_0 LIMIT 1");
    assert_eq!(tables[0].source, files("databend_test", "/test.parquet"));
}

#[test]
fn quoted_refs_only_in_from_lists() {
    let (sql, tables) = query("SELECT '@s/x', a FROM '@s/a.parquet' t, '@s/b/' u WHERE a = '@s/y'");
    assert_eq!(
        sql,
        "SELECT '@s/x', a FROM __xstage_0 t, __xstage_1 u WHERE a = '@s/y'"
    );
    assert_eq!(tables[1].source, files("s", "/b/"));
}

#[test]
fn joins_and_subqueries() {
    let (sql, tables) =
        query("SELECT * FROM (SELECT * FROM @s/a/) x JOIN '@s/b.parquet' y ON x.k = y.k");
    assert_eq!(
        sql,
        "SELECT * FROM (SELECT * FROM __xstage_0) x JOIN __xstage_1 y ON x.k = y.k"
    );
    assert_eq!(tables.len(), 2);
}

#[test]
fn table_options() {
    let (sql, tables) = query(
        "SELECT count(*) FROM @s/dir/ (FILES => ('a.parquet', 'b.parquet'), PATTERN => '.*', FILE_FORMAT => 'parquet') WHERE x > 1",
    );
    assert_eq!(sql, "SELECT count(*) FROM __xstage_0 WHERE x > 1");
    let TableSource::Files(r) = &tables[0].source else {
        panic!()
    };
    assert_eq!(
        r.files.as_deref(),
        Some(&["a.parquet".to_string(), "b.parquet".to_string()][..])
    );
    assert_eq!(r.pattern.as_deref(), Some(".*"));
    assert_eq!(r.file_format, Some(FormatType::Parquet));
    let (_, tables) = query("SELECT * FROM @s/a (FILE_FORMAT => 'TSV')");
    let TableSource::Files(r) = &tables[0].source else {
        panic!()
    };
    assert_eq!(r.file_format, Some(FormatType::Tsv));
    let e = rewrite("SELECT * FROM @s (FILE_FORMAT => 'orc')").unwrap_err();
    assert!(
        e.message()
            .contains("xstage reads CSV, TSV, NDJSON and PARQUET"),
        "{e}"
    );
    assert!(rewrite("SELECT * FROM @s (BOGUS => 1)").is_err());
    assert!(rewrite("SELECT * FROM @s (FILES => ('a'").is_err());
}

#[test]
fn infer_schema() {
    let (sql, tables) =
        query("SELECT * FROM INFER_SCHEMA(location => '@s/test.parquet') WHERE nullable");
    assert_eq!(sql, "SELECT * FROM __xstage_0 WHERE nullable");
    assert_eq!(
        tables[0].source,
        TableSource::InferSchema(StageRef {
            stage: "s".into(),
            path: "/test.parquet".into(),
            files: None,
            pattern: None,
            file_format: None
        })
    );
    assert!(rewrite("SELECT * FROM INFER_SCHEMA(location => 'nope')").is_err());
}

#[test]
fn list_statement() {
    assert_eq!(
        rewrite("list @s/dir/ PATTERN => '.*[.]parquet';").unwrap(),
        Statement::List(StageRef {
            stage: "s".into(),
            path: "/dir/".into(),
            files: None,
            pattern: Some(".*[.]parquet".into()),
            file_format: None
        })
    );
    assert!(matches!(rewrite("LIST @s").unwrap(), Statement::List(_)));
    assert!(rewrite("LIST @s extra").is_err());
    assert!(rewrite("LIST").is_err());
}

fn traits_of(sql: &str) -> Traits {
    match rewrite(sql).unwrap() {
        Statement::Query { traits, .. } => traits,
        other => panic!("{other:?}"),
    }
}

#[test]
fn traits_come_from_tokens_not_strings() {
    assert!(traits_of("SELECT METADATA$FILENAME, a FROM @s").filename_column);
    assert!(traits_of("SELECT \"metadata$filename\" FROM @s").filename_column);
    assert!(!traits_of("SELECT 'METADATA$FILENAME' FROM @s").filename_column);
    let t = traits_of("SELECT * FROM @s WHERE a > 1 LIMIT 3");
    assert!(t.filters && t.limit);
    let t = traits_of("SELECT 'where', \"limit\" FROM @s -- WHERE x LIMIT 1");
    assert!(!t.filters && !t.limit);
}

#[test]
fn the_stages_a_statement_reads() {
    let read = |sql: &str| -> Vec<String> {
        rewrite(sql)
            .unwrap()
            .stages_read()
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(read("LIST @raw/x/"), ["raw"]);
    assert_eq!(
        read("SELECT * FROM @a/x.parquet JOIN @B/y.parquet USING (k) JOIN @b/z USING (k)"),
        ["a", "B"]
    );
    // A COPY's target is not read; its source's stage is.
    assert_eq!(read("COPY INTO @out/p/ FROM @raw/in/"), ["raw"]);
    assert_eq!(
        read("COPY INTO @out FROM (SELECT a FROM @raw/x.csv WHERE a > 1)"),
        ["raw"]
    );
    assert!(read("SELECT 1").is_empty());
}
