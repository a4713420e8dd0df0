"""The benchmark's peers: DuckDB, pyarrow and polars running xstage's benchmark queries.

A worker for `tests/src/bin/bench.rs`: it reads one JSON request per line on stdin and
answers one JSON line on stdout. Each run starts from nothing, as a new process would:
assume the role with the ExternalId (through the benchmark's counting proxy), open the
reader, run the query. The time covers all of it, as xstage's does.

Request: {"tool", "query", "endpoint", "region", "bucket", "prefix", "role_arn",
          "external_id", "lo", "hi"}; DuckDB also takes "query": "sql" with "sql", in which
          {lineitem} stands for the stage's lineitem/*.parquet (scripts/bench-fanout).
Answer:  {"ms": float, "rows": int, "values": [[...]] or null, "peak_added_mb": float} or
         {"error": str}; peak_added_mb is the resident memory the run added at its peak.
"""

import json
import os
import sys
import time
import traceback

import boto3


def assume(req):
    sts = boto3.client("sts", endpoint_url=req["endpoint"], region_name=req["region"])
    return sts.assume_role(
        RoleArn=req["role_arn"],
        RoleSessionName="xstage-bench",
        ExternalId=req["external_id"],
    )["Credentials"]


def paths(req):
    base = f'{req["bucket"]}/{req["prefix"]}bench/'
    return {
        "wide": base + "wide.parquet",
        "small": base + "small.parquet",
        "parts": base + "parts/",
        "csv": base + "wide.csv",
    }


# count, group, parts, csv_count and csv_group are compared value by value; limit1, range and
# small by their row counts.
def answer(rows, values=None):
    return {"rows": rows, "values": values}


def duckdb_run(req):
    import duckdb
    import duckdb_ext

    c = assume(req)
    host = req["endpoint"].removeprefix("http://")
    # The httpfs extension from the duckdb-ext-httpfs wheel: nothing is downloaded.
    ext = os.path.join(list(duckdb_ext.__path__)[0], "extensions")
    con = duckdb.connect(
        config={
            "extension_directory": ext,
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
        }
    )
    con.execute("LOAD httpfs")
    con.execute(
        "CREATE SECRET bench (TYPE s3, KEY_ID ?, SECRET ?, SESSION_TOKEN ?, ENDPOINT ?, "
        "URL_STYLE 'path', USE_SSL false, REGION ?)".replace("?", "'{}'").format(
            c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], host, req["region"]
        )
    )
    p = {k: f"'s3://{v}'" for k, v in paths(req).items()}
    q = req["query"]
    if q == "sql":
        # The fan-out bench: any SQL over the stage's lineitem files.
        lineitem = f"'s3://{req['bucket']}/{req['prefix']}lineitem/*.parquet'"
        got = con.execute(req["sql"].replace("{lineitem}", lineitem)).fetchall()
        return answer(len(got), [[str(v) for v in r] for r in got])

    # Row results as Arrow, as the other peers produce them.
    def rows(sql):
        return con.execute(sql).fetch_arrow_table().num_rows

    if q == "limit1":
        return answer(rows(f"SELECT * FROM {p['wide']} LIMIT 1"))
    if q == "range":
        return answer(rows(f"SELECT * FROM {p['wide']} WHERE id BETWEEN {req['lo']} AND {req['hi']}"))
    if q == "count":
        return answer(1, [list(con.execute(f"SELECT count(*) FROM {p['wide']}").fetchone())])
    if q == "group":
        sql = (
            f"SELECT category, flag, count(*) FROM {p['wide']} "
            "GROUP BY category, flag ORDER BY category, flag"
        )
        rows = [list(r) for r in con.execute(sql).fetchall()]
        return answer(len(rows), rows)
    if q == "small":
        return answer(rows(f"SELECT * FROM {p['small']}"))
    if q == "parts":
        sql = f"SELECT count(*) FROM 's3://{paths(req)['parts']}*.parquet'"
        return answer(1, [list(con.execute(sql).fetchone())])
    if q == "csv_count":
        return answer(1, [list(con.execute(f"SELECT count(*) FROM read_csv({p['csv']})").fetchone())])
    if q == "csv_group":
        sql = (
            f"SELECT category, flag, count(*) FROM read_csv({p['csv']}) "
            "GROUP BY category, flag ORDER BY category, flag"
        )
        rows = [list(r) for r in con.execute(sql).fetchall()]
        return answer(len(rows), rows)
    raise ValueError(f"unknown query {q}")


def pyarrow_run(req):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from pyarrow import fs

    # pyarrow assumes the role itself; the AWS SDK for C++ reads the STS endpoint from
    # AWS_ENDPOINT_URL_STS, which the benchmark sets to the proxy.
    s3 = fs.S3FileSystem(
        role_arn=req["role_arn"],
        external_id=req["external_id"],
        session_name="xstage-bench",
        endpoint_override=req["endpoint"].removeprefix("http://"),
        scheme="http",
        region=req["region"],
        load_frequency=900,
    )
    p = paths(req)
    q = req["query"]

    def open_(key):
        return ds.dataset(p[key], filesystem=s3, format="parquet")

    if q == "limit1":
        return answer(open_("wide").head(1).num_rows)
    if q == "range":
        f = (pc.field("id") >= req["lo"]) & (pc.field("id") <= req["hi"])
        return answer(open_("wide").to_table(filter=f).num_rows)
    if q == "count":
        return answer(1, [[open_("wide").count_rows()]])
    if q == "group":
        t = open_("wide").to_table(columns=["category", "flag"])
        # Each row group has its own dictionary, which group_by cannot unify.
        t = t.set_column(0, "category", pc.cast(t["category"], pa.string()))
        g = t.group_by(["category", "flag"]).aggregate([([], "count_all")])
        rows = sorted([r["category"], r["flag"], r["count_all"]] for r in g.to_pylist())
        return answer(len(rows), rows)
    if q == "small":
        return answer(open_("small").to_table().num_rows)
    if q == "parts":
        return answer(1, [[open_("parts").count_rows()]])
    if q == "csv_count":
        return answer(1, [[ds.dataset(p["csv"], filesystem=s3, format="csv").count_rows()]])
    if q == "csv_group":
        t = ds.dataset(p["csv"], filesystem=s3, format="csv").to_table(columns=["category", "flag"])
        g = t.group_by(["category", "flag"]).aggregate([([], "count_all")])
        rows = sorted([r["category"], r["flag"], r["count_all"]] for r in g.to_pylist())
        return answer(len(rows), rows)
    raise ValueError(f"unknown query {q}")


def polars_run(req):
    import polars as pl

    c = assume(req)
    options = {
        "aws_access_key_id": c["AccessKeyId"],
        "aws_secret_access_key": c["SecretAccessKey"],
        "aws_session_token": c["SessionToken"],
        "aws_endpoint_url": req["endpoint"],
        "aws_region": req["region"],
        "aws_allow_http": "true",
    }
    p = {k: "s3://" + v for k, v in paths(req).items()}
    q = req["query"]

    def scan(key):
        return pl.scan_parquet(key, storage_options=options)

    if q == "limit1":
        return answer(scan(p["wide"]).head(1).collect().height)
    if q == "range":
        f = pl.col("id").is_between(req["lo"], req["hi"])
        return answer(scan(p["wide"]).filter(f).collect().height)
    if q == "count":
        return answer(1, [[scan(p["wide"]).select(pl.len()).collect().item()]])
    if q == "group":
        g = (
            scan(p["wide"])
            .group_by("category", "flag")
            .agg(pl.len())
            .sort("category", "flag")
            .collect()
        )
        rows = [list(r) for r in g.rows()]
        return answer(len(rows), rows)
    if q == "small":
        return answer(scan(p["small"]).collect().height)
    if q == "parts":
        return answer(1, [[scan(p["parts"] + "*.parquet").select(pl.len()).collect().item()]])
    if q == "csv_count":
        csv = pl.scan_csv(p["csv"], storage_options=options)
        return answer(1, [[csv.select(pl.len()).collect().item()]])
    if q == "csv_group":
        g = (
            pl.scan_csv(p["csv"], storage_options=options)
            .group_by("category", "flag")
            .agg(pl.len())
            .sort("category", "flag")
            .collect()
        )
        return answer(g.height, [list(r) for r in g.rows()])
    raise ValueError(f"unknown query {q}")


TOOLS = {"duckdb": duckdb_run, "pyarrow": pyarrow_run, "polars": polars_run}


def versions():
    import duckdb
    import polars
    import pyarrow

    return {"duckdb": duckdb.__version__, "pyarrow": pyarrow.__version__, "polars": polars.__version__}


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line[len(field):].strip().split()[0])
    raise KeyError(field)


def rss_mark():
    """Resets the high-water mark and returns the resident kB (tests/src/rss.rs does the same)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return status_kb("VmRSS:")
    except OSError:
        return None


def main():
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req.get("tool") == "versions":
                out = {"versions": versions()}
            else:
                run = TOOLS[req["tool"]]
                before = rss_mark()
                start = time.perf_counter()
                out = run(req)
                out["ms"] = (time.perf_counter() - start) * 1000.0
                if before is not None:
                    out["peak_added_mb"] = (status_kb("VmHWM:") - before) / 1024.0
        except Exception as e:  # reported, not fatal: the benchmark prints it in the table
            out = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
        print(json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main()
