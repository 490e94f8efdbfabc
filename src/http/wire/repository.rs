//! The JSON of `POST /admin/repository`, what `quiver apply` sends: every workspace's repository
//! files as the CLI read them (path, for error messages, and content), the hash of the served
//! repository the plan was made against, and whether the apply may drop stored data.

use serde::Deserialize;

use crate::http::served::ApplyRequest;
use crate::registry::WorkspaceFiles;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyBody {
    workspaces: Vec<WorkspaceBody>,
    #[serde(default)]
    expected_hash: Option<String>,
    #[serde(default)]
    allow_data_loss: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceBody {
    name: String,
    live: bool,
    files: Vec<FileBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    path: String,
    content: String,
}

impl From<ApplyBody> for ApplyRequest {
    fn from(body: ApplyBody) -> ApplyRequest {
        ApplyRequest {
            workspaces: body
                .workspaces
                .into_iter()
                .map(|workspace| {
                    let files = workspace.files.into_iter().map(|f| (f.path, f.content));
                    WorkspaceFiles::new(workspace.name, workspace.live, files)
                })
                .collect(),
            expected_hash: body.expected_hash,
            allow_data_loss: body.allow_data_loss,
        }
    }
}
