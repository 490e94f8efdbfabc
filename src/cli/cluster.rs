//! `quiver cluster status`: the cluster's stream, the NATS servers holding it, the messages of
//! each partition and how far each node has applied, as JetStream tells (`cluster::status`).

use anyhow::Context;

use crate::cluster::{status, ClusterStatus};

#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ClusterCommand {
    /// The stream, its NATS servers, messages per partition, and each node's applied sequence
    /// and lag.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// The cluster's NATS servers (comma-separated nats:// URLs), as the nodes are given them.
    #[arg(long, env = "QUIVER_NATS_URLS", value_delimiter = ',', required = true)]
    nats_urls: Vec<String>,
    /// The cluster's stream.
    #[arg(
        long = "cluster-stream",
        env = "QUIVER_CLUSTER_STREAM",
        default_value = "QUIVER"
    )]
    stream: String,
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let ClusterCommand::Status(args) = args.command;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the runtime")?;
    let status = runtime.block_on(status(&args.nats_urls, &args.stream))?;
    print!("{}", render(&status));
    Ok(())
}

fn render(status: &ClusterStatus) -> String {
    let mut out = format!(
        "stream {}: {} messages, last sequence {}, leader {}\n",
        status.stream,
        status.messages,
        status.last_sequence,
        status
            .leader
            .as_deref()
            .unwrap_or("none (a single NATS server)")
    );
    for follower in &status.followers {
        let state = match (follower.offline, follower.current) {
            (true, _) => "offline",
            (false, true) => "current",
            (false, false) => "catching up",
        };
        let lag = follower
            .lag
            .map_or_else(String::new, |lag| format!(", lag {lag}"));
        out += &format!("  server {}: {state}{lag}\n", follower.name);
    }
    out += "partitions (messages):\n";
    for (subject, messages) in &status.partitions {
        out += &format!("  {subject} {messages}\n");
    }
    out += "consumers (a node's, or its replica of a partition):\n";
    for node in &status.nodes {
        out += &format!(
            "  {} applied {} behind {}\n",
            node.node_id, node.applied, node.behind
        );
    }
    if status.members.is_empty() {
        return out;
    }
    out += "nodes (heartbeats):\n";
    for member in &status.members {
        let age = member.beat_age(status.read_at);
        let state = if member.is_live(status.read_at) {
            "live"
        } else {
            "gone"
        };
        out += &format!(
            "  {} {} {state}, heartbeat {:.1}s ago\n",
            member.node_id,
            member.record.url,
            age.as_secs_f64()
        );
    }
    out += "owners:\n";
    for (partition, owners) in status.owners().into_iter().enumerate() {
        let owners: Vec<String> = owners
            .into_iter()
            .map(|owner| {
                let state = if owner.ready { "ready" } else { "catching up" };
                let behind = owner
                    .behind
                    .map_or_else(String::new, |behind| format!(" (behind {behind})"));
                format!("{} {state}{behind}", owner.node_id)
            })
            .collect();
        out += &format!("  partition {partition}: {}\n", owners.join(", "));
    }
    out
}
