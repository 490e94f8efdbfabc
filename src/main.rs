//! The `quiver` binary: parses the command line and hands over to `cli`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    quiver::cli::run()
}
