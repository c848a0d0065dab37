//! `ferry stats` as the store grows: the figures over a store holding
//! 200,000 deployments that ended over 60 days (with their commit times
//! and some rollbacks), against the same command on an empty store (its
//! floor: starting the process and opening the store). A window of a day
//! reads a day's rows through the index on `finished_at`, so it costs
//! about what the empty store does; 30 days reads half the store.

use super::*;

const DEPLOYMENTS: i64 = 200_000;
const SPAN_MS: i64 = 60 * 86_400_000;
const RUNS: usize = 7;

fn config(dir: &Path, name: &str, database_url: &Option<String>) -> std::path::PathBuf {
    let storage = match database_url {
        Some(url) => format!("database_url = {url:?}\n"),
        None => format!("dir = {:?}\n", dir.join(name)),
    };
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[server]\npublic_url = \"http://127.0.0.1:1\"\n[storage]\n{storage}\
             [[target]]\nrepository = {REPO:?}\nenvironment = \"production\"\nhosts = [\"h\"]\n\
             [[target]]\nrepository = {REPO:?}\nenvironment = \"staging\"\nhosts = [\"h\"]\n\
             [[target]]\nrepository = {REPO:?}\nenvironment = \"review-*\"\nhosts = [\"h\"]\n"
        ),
    )
    .unwrap();
    path
}

/// `ferry stats ARGS` RUNS times: (median, best, worst).
fn time(config: &Path, args: &[&str]) -> (Duration, Duration, Duration) {
    let mut took = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let (ok, out) = run(Command::new(common::ferry_binary())
            .arg("stats")
            .args(args)
            .arg("--config")
            .arg(config));
        took.push(start.elapsed());
        assert!(ok, "ferry stats {args:?}: {out}");
    }
    let (best, worst) = (*took.iter().min().unwrap(), *took.iter().max().unwrap());
    (median(took), best, worst)
}

/// Deployment i ends at now - (N - i) * spacing: the newest just now.
fn fill_sqlite(db: &Path, now: i64) {
    let c = rusqlite::Connection::open(db).unwrap();
    let spacing = SPAN_MS / DEPLOYMENTS;
    c.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {DEPLOYMENTS})
         INSERT INTO deployments (id, seq, repository, environment, task, git_ref, sha, payload,
             creator, production, transient, state, description, created_at, started_at,
             finished_at)
         SELECT i, i, '{REPO}',
                CASE i % 4 WHEN 0 THEN 'production' WHEN 1 THEN 'staging'
                     ELSE 'review-' || (i % 50) END,
                'deploy', 'main', printf('%040x', i), '{{}}', 'bench', 0, 0,
                CASE WHEN i % 10 = 0 THEN 'failure' ELSE 'success' END, 'bench',
                {now} - ({DEPLOYMENTS} - i) * {spacing} - 90000,
                {now} - ({DEPLOYMENTS} - i) * {spacing} - 60000,
                {now} - ({DEPLOYMENTS} - i) * {spacing}
         FROM n;
         INSERT INTO commit_times (deployment_id, repository, sha, committed_at, next_at, done_at)
         SELECT id, repository, sha, finished_at - 3600000, 0, 0 FROM deployments;
         INSERT INTO rollbacks (deployment_id, kind, at)
         SELECT id, 'requested', finished_at FROM deployments WHERE id % 97 = 0;
         COMMIT;
         ANALYZE;"
    ))
    .unwrap();
}

async fn fill_postgres(url: &str, now: i64) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let spacing = SPAN_MS / DEPLOYMENTS;
    for sql in [
        format!(
            "INSERT INTO deployments (id, repository, environment, task, git_ref, sha, payload,
                 creator, production, transient, state, description, created_at, started_at,
                 finished_at)
             SELECT i, '{REPO}',
                    CASE i % 4 WHEN 0 THEN 'production' WHEN 1 THEN 'staging'
                         ELSE 'review-' || (i % 50) END,
                    'deploy', 'main', lpad(to_hex(i), 40, '0'), '{{}}', 'bench', false, false,
                    CASE WHEN i % 10 = 0 THEN 'failure' ELSE 'success' END, 'bench',
                    {now} - ({DEPLOYMENTS} - i) * {spacing} - 90000,
                    {now} - ({DEPLOYMENTS} - i) * {spacing} - 60000,
                    {now} - ({DEPLOYMENTS} - i) * {spacing}
             FROM generate_series(1::bigint, {DEPLOYMENTS}) AS i"
        ),
        "INSERT INTO commit_times (deployment_id, repository, sha, committed_at, next_at, done_at)
         SELECT id, repository, sha, finished_at - 3600000, 0, 0 FROM deployments"
            .into(),
        "INSERT INTO rollbacks (deployment_id, kind, at)
         SELECT id, 'requested', finished_at FROM deployments WHERE id % 97 = 0"
            .into(),
        "ANALYZE".into(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

pub(crate) async fn stats(report: &mut Vec<[String; 5]>, postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    for store in burst_stores(postgres) {
        let (empty_url, full_url) = (store_url(store), store_url(store));
        let empty = config(dir.path(), &format!("{store}-empty"), &empty_url);
        let full = config(dir.path(), &format!("{store}-full"), &full_url);
        // Created and migrated as `ferry serve` does.
        for (name, url) in [("empty", &empty_url), ("full", &full_url)] {
            match url {
                None => {
                    let path = dir.path().join(format!("{store}-{name}"));
                    std::fs::create_dir_all(&path).unwrap();
                    ferry::store::sqlite::SqliteStore::open(&path)
                        .await
                        .unwrap();
                }
                Some(url) => {
                    ferry::store::postgres::PgStore::connect(url).await.unwrap();
                }
            }
        }
        let now = ferry::store::Timestamp::now().as_millis();
        match &full_url {
            None => fill_sqlite(&dir.path().join(format!("{store}-full/ferry.db")), now),
            Some(url) => fill_postgres(url, now).await,
        }
        let (floor, floor_best, _) = time(&empty, &["--json"]);
        for (what, args) in [
            ("a day", &["--json", "--since", "1d"][..]),
            (
                "a day, one environment",
                &[
                    "--json",
                    "--since",
                    "1d",
                    "--environment",
                    "octo-org/web:production",
                ][..],
            ),
            ("30 days (100,000 rows)", &["--json", "--since", "30d"][..]),
        ] {
            let (took, _, worst) = time(&full, args);
            report.push([
                format!("`ferry stats`, {what}, store of 200,000 deployments, {store}"),
                format!("{} (worst {})", ms(took), ms(worst)),
                format!("empty store {} (best {})", ms(floor), ms(floor_best)),
                format!(
                    "{:.2}× (worst vs best {:.2}×)",
                    took.as_secs_f64() / floor.as_secs_f64(),
                    worst.as_secs_f64() / floor_best.as_secs_f64()
                ),
                "a day ≈ 1×: an index, not a scan".into(),
            ]);
        }
    }
}
