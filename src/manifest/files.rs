//! File parameters (`type = "file"`, docs/files.md): how to send one, the
//! check of a file that arrived (size, extension, name) into its value, and
//! binding the files of a request to the file parameters.

use super::Manifest;
use super::params::{ArgError, Param, ParamKind, dotted, repeated};
use crate::types::{ArgValue, Args, FileInput};

impl Param {
    /// How to send this file parameter.
    pub fn attach_hint(&self) -> String {
        format!(
            "{} is a file: in Slack attach it to a message that mentions ExecGov with the command; \
             in Matrix send the file, then reply to it with the command; on the web choose it in \
             the form; on the command line pass `{}=@PATH`",
            self.name_and_kind(),
            self.name
        )
    }

    fn name_and_kind(&self) -> String {
        match &self.kind {
            ParamKind::File {
                max_size,
                extensions,
            } => {
                let exts = if extensions.is_empty() {
                    String::new()
                } else {
                    format!("{}, ", dotted(extensions))
                };
                format!(
                    "`{}` ({exts}at most {})",
                    self.name,
                    bytesize::ByteSize::b(*max_size).display().iec()
                )
            }
            _ => format!("`{}`", self.name),
        }
    }

    /// Checks a file that arrived for this parameter and makes its value:
    /// its size and extension against the manifest, its SHA-256 computed.
    pub fn bind_file(&self, name: &str, data: &[u8]) -> Result<ArgValue, String> {
        use sha2::Digest as _;
        let ParamKind::File {
            max_size,
            extensions,
        } = &self.kind
        else {
            return Err(format!("`{}` is not a file parameter", self.name));
        };
        let size = data.len() as u64;
        if size > *max_size {
            return Err(format!(
                "`{name}` is {}; {} takes at most {}",
                bytesize::ByteSize::b(size).display().iec(),
                self.name,
                bytesize::ByteSize::b(*max_size).display().iec()
            ));
        }
        let ext = std::path::Path::new(name)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if !extensions.is_empty() && !extensions.contains(&ext) {
            return Err(format!("`{name}` is not a {} file", dotted(extensions)));
        }
        // What approvers read must be what it is: no control or invisible
        // characters (a newline or a bidi override could dress the name up).
        let hidden = |c: char| {
            c.is_control()
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
        };
        if name.is_empty()
            || name.len() > 255
            || name.contains('/')
            || name.chars().any(hidden)
            || name == "."
            || name == ".."
        {
            return Err(format!(
                "{:?} is not a file name ExecGov takes (at most 255 bytes, no `/`, no control or invisible characters); rename it and send it again",
                name.chars().take(80).collect::<String>()
            ));
        }
        Ok(ArgValue::File(crate::types::FileArg {
            name: name.to_string(),
            size,
            sha256: hex::encode(sha2::Sha256::digest(data)),
        }))
    }
}

impl Manifest {
    /// Like [`Manifest::validate_args`], with the files that came with the
    /// request bound to the file parameters: by name (`data=report.csv` names
    /// the attached `report.csv`), or the one file to the one file parameter
    /// left. Answers the arguments and the files to keep with the run.
    pub fn validate_with_files(
        &self,
        raw: &[(String, String)],
        files: &[execgov_chat::Attachment],
    ) -> Result<(Args, Vec<FileInput>), ArgError> {
        let is_file = |k: &str| {
            self.params
                .iter()
                .any(|p| p.name == k && matches!(p.kind, ParamKind::File { .. }))
        };
        let mut used = vec![false; files.len()];
        let mut bound: Vec<(&Param, usize)> = Vec::new();
        for (key, value) in raw.iter().filter(|(k, _)| is_file(k)) {
            let param = self.param_named(key)?;
            if bound.iter().any(|(p, _)| p.name == *key) {
                return Err(repeated(key));
            }
            let Some(i) = (0..files.len()).find(|i| !used[*i] && files[*i].name == *value) else {
                return Err(ArgError {
                    param: Some(key.clone()),
                    message: if files.is_empty() {
                        param.attach_hint()
                    } else {
                        format!(
                            "no attached file is named `{value}` (attached: {})",
                            names(files)
                        )
                    },
                });
            };
            used[i] = true;
            bound.push((param, i));
        }
        let open: Vec<&Param> = self
            .params
            .iter()
            .filter(|p| matches!(p.kind, ParamKind::File { .. }))
            .filter(|p| !bound.iter().any(|(b, _)| b.name == p.name))
            .collect();
        let left: Vec<usize> = (0..files.len()).filter(|i| !used[*i]).collect();
        match (open.as_slice(), left.as_slice()) {
            (_, []) => {}
            ([one], [i]) => bound.push((one, *i)),
            ([], _) => {
                return Err(ArgError {
                    param: None,
                    message: if bound.is_empty() {
                        format!(
                            "this script takes no file, but {} came with the request",
                            names(files)
                        )
                    } else {
                        format!(
                            "{} came with the request but no parameter takes it",
                            names_of(files, &left)
                        )
                    },
                });
            }
            _ => {
                return Err(ArgError {
                    param: None,
                    message: format!(
                        "several files came ({}) for several file parameters: say which is which, e.g. `{}={}`",
                        names_of(files, &left),
                        open[0].name,
                        files[left[0]].name
                    ),
                });
            }
        }
        let mut args = Args::new();
        let mut inputs = Vec::new();
        for (param, i) in bound {
            let file = &files[i];
            let value = param
                .bind_file(&file.name, &file.data)
                .map_err(|message| ArgError {
                    param: Some(param.name.clone()),
                    message,
                })?;
            if let ArgValue::File(f) = &value {
                inputs.push(FileInput {
                    param: param.name.clone(),
                    name: f.name.clone(),
                    sha256: f.sha256.clone(),
                    data: file.data.clone(),
                });
            }
            args.insert(param.name.clone(), value);
        }
        let rest: Vec<(String, String)> =
            raw.iter().filter(|(k, _)| !is_file(k)).cloned().collect();
        let args = self.validate_into(args, &rest)?;
        Ok((args, inputs))
    }
}

fn names(files: &[execgov_chat::Attachment]) -> String {
    files
        .iter()
        .map(|f| format!("`{}`", f.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn names_of(files: &[execgov_chat::Attachment], which: &[usize]) -> String {
    which
        .iter()
        .map(|i| format!("`{}`", files[*i].name))
        .collect::<Vec<_>>()
        .join(", ")
}
