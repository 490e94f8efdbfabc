//! The `quiver` binary: parses the command line and hands over to `cli`.

fn main() -> anyhow::Result<()> {
    quiver::cli::run()
}
