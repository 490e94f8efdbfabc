//! Configuration: file < environment < flags for every setting, refusals that name where the
//! value came from, the key and why, and `quiver config check`, which starts nothing.

use std::path::Path;
use std::process::{Command, Output};

use super::common::repo_root;
use super::registry::broken_config;

/// `quiver config check --config CONFIG ARGS...` with `env`, and no other `QUIVER_*` setting.
fn check(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quiver"));
    command
        .args(["config", "check", "--config"])
        .arg(config)
        .args(args);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("QUIVER_")) {
        command.env_remove(name);
    }
    command.env("RUST_BACKTRACE", "0").envs(env.iter().copied());
    command.output().expect("the quiver binary runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn refusal(output: &Output) -> String {
    assert!(!output.status.success(), "the check should fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file() {
    let dir = broken_config("config.toml", "workers = 0", "workers = 3");
    let config = dir.path().join("config.toml");
    assert!(stdout(&check(&config, &[], &[])).contains("server.workers = 3\n"));
    let env = [("QUIVER_WORKERS", "4"), ("QUIVER_FSYNC", "never")];
    let from_env = stdout(&check(&config, &[], &env));
    assert!(from_env.contains("server.workers = 4\n"), "{from_env}");
    assert!(from_env.contains("persistence.fsync = never\n"));
    let from_flag = stdout(&check(&config, &["--workers", "5"], &env));
    assert!(from_flag.contains("server.workers = 5\n"), "{from_flag}");
    assert!(from_flag.contains("persistence.fsync = never\n"));
    assert!(from_flag.ends_with(&format!("{}: valid\n", config.display())));
}

/// Flags, environment, and what the refusal says.
type Refusal = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn unknown_keys_and_bad_values_are_refused_naming_origin_key_and_reason() {
    let in_the_file = [
        (
            "workers = 0",
            "wrokers = 0",
            "invalid configuration: server.wrokers: unknown field `wrokers`",
        ),
        (
            "shards = 0",
            "shards = \"two\"",
            "invalid configuration: server.shards: invalid type: string \"two\"",
        ),
        (
            "listen = \"127.0.0.1:8080\"",
            "listen = \"localhost\"",
            "server.listen `localhost` is not HOST:PORT",
        ),
    ];
    for (from, to, expected) in in_the_file {
        let dir = broken_config("config.toml", from, to);
        let config = dir.path().join("config.toml");
        let stderr = refusal(&check(&config, &[], &[]));
        let expected = format!("{}: {expected}", config.display());
        assert!(stderr.contains(&expected), "{stderr}");
    }

    let config = repo_root().join("config.toml");
    let refused: [Refusal; 4] = [
        (
            &[],
            &[("QUIVER_SHARDS", "two")],
            "QUIVER_SHARDS: server.shards `two` is not a whole number",
        ),
        (
            &["--fsync", "sometimes"],
            &[],
            "--fsync: persistence.fsync `sometimes` must be always, every_second or never",
        ),
        (
            &[],
            &[("QUIVER_LOG_FORMAT", "xml")],
            "QUIVER_LOG_FORMAT: log.format `xml` must be text or json",
        ),
        (
            &["--snapshot-interval", "soon"],
            &[],
            "--snapshot-interval: persistence.snapshot_interval `soon` is not a duration",
        ),
    ];
    for (args, env, expected) in refused {
        let stderr = refusal(&check(&config, args, env));
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn config_check_validates_the_repository_and_starts_nothing() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("never-created");
    let config = repo_root().join("config.toml");
    let output = check(&config, &["--data-dir", data_dir.to_str().unwrap()], &[]);
    let printed = stdout(&output);
    assert!(printed.contains("workspace prod (live)"), "{printed}");
    assert!(printed.contains("demo seed transactions:"), "{printed}");
    assert!(printed.contains(&format!("storage.data_dir = {}\n", data_dir.display())));
    assert!(!data_dir.exists(), "config check creates nothing");

    let broken = broken_config(
        "features/prod/views.toml",
        "name = \"user_profile\"",
        "name = \"user profile\"",
    );
    let stderr = refusal(&check(&broken.path().join("config.toml"), &[], &[]));
    assert!(stderr.contains("views.toml"), "{stderr}");
}

#[test]
fn the_cluster_is_off_by_default_and_its_settings_are_checked() {
    let config = repo_root().join("config.toml");
    let single = stdout(&check(&config, &[], &[]));
    assert!(single.contains("cluster.nats_urls = none\n"), "{single}");
    let joined = stdout(&check(
        &config,
        &["--node-id", "node-1", "--cluster-replicas", "3"],
        &[(
            "QUIVER_NATS_URLS",
            "nats://10.0.0.1:4222, nats://10.0.0.2:4222",
        )],
    ));
    for line in [
        "cluster.nats_urls = nats://10.0.0.1:4222,nats://10.0.0.2:4222\n",
        "cluster.stream = QUIVER\n",
        "cluster.partitions = 16\n",
        "cluster.replicas = 3\n",
        "cluster.node_id = node-1\n",
    ] {
        assert!(joined.contains(line), "{joined}");
    }
    let urls = ["--nats-urls", "nats://127.0.0.1:4222"];
    let refused: [(&[&str], &str); 4] = [
        (
            &[],
            "cluster.node_id `` is required when cluster.nats_urls is set",
        ),
        (
            &["--node-id", "node.1"],
            "--node-id: cluster.node_id `node.1` must be letters, digits, - and _ only",
        ),
        (
            &["--node-id", "n1", "--cluster-replicas", "7"],
            "--cluster-replicas: cluster.replicas `7` must be 1 to 5",
        ),
        (
            &[
                "--node-id",
                "n1",
                "--cluster-owners",
                "2",
                "--data-dir",
                "/tmp/never-created",
            ],
            "--cluster-owners: cluster.owners `2` cannot be used with storage.data_dir yet",
        ),
    ];
    for (args, expected) in refused {
        let args: Vec<&str> = urls.iter().chain(args).copied().collect();
        let stderr = refusal(&check(&config, &args, &[]));
        assert!(stderr.contains(expected), "{stderr}");
    }
}
