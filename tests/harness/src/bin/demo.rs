//! The README's first command: the seed flow on a fresh machine.
//!
//! Starts LocalStack (or uses `XSTAGE_TEST_ENDPOINT`), creates the seed's bucket, role,
//! trust and permission policies and `test.parquet`, then runs
//! `SELECT * FROM @databend_test/test.parquet LIMIT 1` through the stage query function and
//! prints the result as a table. Progress goes to stderr, the table to stdout.

use anyhow::{Context, Result};
use parquet::basic::Compression;
use xstage_harness::{fixtures, localstack, seed, table};

const QUERY: &str = "SELECT * FROM @databend_test/test.parquet LIMIT 1";

fn main() -> Result<()> {
    seed::platform_identity();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async {
        eprintln!("==> starting LocalStack (S3, STS, IAM) ...");
        let started = std::time::Instant::now();
        let endpoint = localstack::localstack().endpoint().to_string();
        eprintln!(
            "    ready at {endpoint} in {:.1}s",
            started.elapsed().as_secs_f64()
        );

        eprintln!(
            "==> seeding: bucket {}, role {} trusting {} with ExternalId {:?}",
            seed::BUCKET,
            seed::role_arn(),
            seed::platform_principal(),
            seed::EXTERNAL_ID
        );
        let people = fixtures::people(100);
        let body =
            fixtures::write_parquet(&[fixtures::people_batch(&people)], Compression::SNAPPY, 50);
        seed::seed(&endpoint, body).await?;
        eprintln!(
            "    uploaded s3://{}/{}test.parquet ({} rows)",
            seed::BUCKET,
            seed::PREFIX,
            people.len()
        );

        eprintln!(
            "==> CREATE CONNECTION {} STORAGE_TYPE='s3' ROLE_ARN='{}' EXTERNAL_ID='{}';",
            seed::CONNECTION,
            seed::role_arn(),
            seed::EXTERNAL_ID
        );
        eprintln!(
            "==> CREATE STAGE {} URL='s3://{}/{}' CONNECTION=(CONNECTION_NAME='{}');",
            seed::STAGE,
            seed::BUCKET,
            seed::PREFIX,
            seed::CONNECTION
        );
        eprintln!("==> {QUERY};");
        let event = seed::seed_event(&endpoint, QUERY);
        match xstage_core::handle(event).await {
            Ok(response) => {
                let value = serde_json::to_value(&response)?;
                print!("{}", table::render(&value));
                eprintln!("    stats: {}", value["stats"]);
                Ok(())
            }
            Err(e) => {
                eprintln!("{}", serde_json::to_string(&e.to_body())?);
                anyhow::bail!("the query failed: {e}")
            }
        }
    })
}
