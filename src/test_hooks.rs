//! Test hooks: a `QUIVER_TEST_*` variable names a file whose existence holds a step of the
//! server (or makes it fail), so the integration tests can act in the middle of that step
//! without depending on how long it takes. Unset in any real deployment, where a hook costs
//! the check of an `Option`.

use std::path::PathBuf;
use std::time::Duration;

/// The file a hook's variable names, if it is set.
pub struct HookFile(Option<PathBuf>);

impl HookFile {
    /// The hook `variable` (read once: the callers on hot paths keep it).
    pub fn from_env(variable: &str) -> HookFile {
        HookFile(std::env::var_os(variable).map(PathBuf::from))
    }

    /// The hook is set and its file exists: the test asks for the hold or the failure now.
    pub fn is_on(&self) -> bool {
        self.0.as_ref().is_some_and(|file| file.exists())
    }

    /// Says the step is reached (the file `<hook>.held`, for the test to wait on), then waits
    /// while [`HookFile::is_on`].
    pub async fn hold_here(&self) {
        if let Some(file) = self.0.as_ref().filter(|_| self.is_on()) {
            let mut held = file.clone().into_os_string();
            held.push(".held");
            if let Err(error) = std::fs::write(&held, b"") {
                tracing::warn!(%error, "test hook: could not say the hold is reached");
            }
        }
        self.wait_while_on().await;
    }

    /// Waits while [`HookFile::is_on`].
    pub async fn wait_while_on(&self) {
        while self.is_on() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
