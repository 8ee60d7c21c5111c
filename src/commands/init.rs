//! `wisp init`: a new app in a directory, from one of the templates under `templates/`.
//!
//! The templates are embedded in the binary (`include_str!`), so `wisp init` needs nothing
//! but the binary. Rendering replaces `{{name}}` (the app's and its function's name) and
//! `{{crate}}` (the same with `_` for `-`, as cargo names a library's `.wasm`); the rendered
//! `wisp.toml` is checked with `wisp_manifest` before anything is written, so what `init`
//! writes deploys.

use crate::exit::{CliError, Exit};
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use wisp_core::{FunctionName, NameError};

/// Create an app from a template: its wisp.toml, its source and a README saying how to run it.
///
/// The app and its function are named after DIR's last component (or --name). Run
/// `wisp init --list` for the templates.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// The directory to create the app in: created if missing, and it must be empty
    /// (unless --force).
    #[arg(value_name = "DIR", required_unless_present = "list")]
    pub dir: Option<PathBuf>,
    /// The template.
    #[arg(long, short, value_enum, default_value_t = DEFAULT_TEMPLATE, value_name = "T")]
    pub template: TemplateName,
    /// The app's and its function's name, instead of DIR's last component: lowercase
    /// letters, digits and '-', starting with a letter.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Write into a directory that is not empty (files of the template's names are replaced,
    /// others are kept).
    #[arg(long)]
    pub force: bool,
    /// List the templates and exit.
    #[arg(long, conflicts_with_all = ["dir", "name", "force"])]
    pub list: bool,
}

/// The templates, as `--template` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TemplateName {
    /// An HTTP function in Rust: a wasi:http component with `wstd` (needs the wasm32-wasip2 target)
    HttpRust,
    /// An event function in Rust: JSON on stdin and stdout (needs the wasm32-wasip1 target)
    EventRust,
    /// A Python handler behind an HTTP route (needs python3; no build)
    Python,
    /// A Node handler behind an HTTP route (needs node; no build)
    Node,
    /// A Python job run every minute on a schedule (needs python3; no build)
    Cron,
    /// A Python worker for a queue declared beside it, with a dead-letter queue (needs python3; no build)
    QueueWorker,
}

/// The template when `--template` is not given: it needs no toolchain but `python3`.
const DEFAULT_TEMPLATE: TemplateName = TemplateName::Python;

/// A template: its files (where each is written, and its text) and what to do next.
struct Template {
    files: &'static [(&'static str, &'static str)],
    /// A rustup target to add once and a build to run before `wisp up`, if any.
    build: Option<(&'static str, &'static str)>,
    /// Commands to try once `wisp up` runs, each with a comment.
    try_it: &'static [(&'static str, &'static str)],
}

macro_rules! files {
    ($dir:literal: $($to:literal => $from:literal),+ $(,)?) => {
        &[$(($to, include_str!(concat!("../../templates/", $dir, "/", $from)))),+]
    };
}

const HTTP_RUST: Template = Template {
    files: files!("http-rust":
        "wisp.toml" => "wisp.toml",
        "Cargo.toml" => "Cargo.toml.tmpl",
        "src/lib.rs" => "src/lib.rs",
        "README.md" => "README.md",
        ".gitignore" => "gitignore",
    ),
    build: Some((
        "rustup target add wasm32-wasip2",
        "cargo build --release --target wasm32-wasip2",
    )),
    try_it: &[
        ("curl localhost:8080/{{name}}/Ada", "Hello, Ada!"),
        ("wisp logs {{name}}", "what it wrote to stderr"),
    ],
};

const EVENT_RUST: Template = Template {
    files: files!("event-rust":
        "wisp.toml" => "wisp.toml",
        "Cargo.toml" => "Cargo.toml.tmpl",
        "src/main.rs" => "src/main.rs",
        "README.md" => "README.md",
        ".gitignore" => "gitignore",
    ),
    build: Some((
        "rustup target add wasm32-wasip1",
        "cargo build --release --target wasm32-wasip1",
    )),
    try_it: &[
        (
            r#"wisp invoke {{name}} --data '{"name":"Ada"}'"#,
            r#"{"message":"Hello, Ada!"}"#,
        ),
        ("curl localhost:8080/{{name}}/Ada", "the same, through its route"),
    ],
};

const PYTHON: Template = Template {
    files: files!("python":
        "wisp.toml" => "wisp.toml",
        "app.py" => "app.py",
        "README.md" => "README.md",
        ".gitignore" => "gitignore",
    ),
    build: None,
    try_it: &[
        ("curl localhost:8080/{{name}}/Ada", "Hello, Ada!"),
        (
            r#"wisp invoke {{name}} --data '{"name":"Ada"}'"#,
            r#"{"message": "Hello, Ada!"}"#,
        ),
    ],
};

const NODE: Template = Template {
    files: files!("node":
        "wisp.toml" => "wisp.toml",
        "index.js" => "index.js",
        "README.md" => "README.md",
        ".gitignore" => "gitignore",
    ),
    build: None,
    try_it: &[
        ("curl localhost:8080/{{name}}/Ada", "Hello, Ada!"),
        (
            r#"wisp invoke {{name}} --data '{"name":"Ada"}'"#,
            r#"{"message":"Hello, Ada!"}"#,
        ),
    ],
};

const CRON: Template = Template {
    files: files!("cron":
        "wisp.toml" => "wisp.toml",
        "app.py" => "app.py",
        "README.md" => "README.md",
        ".gitignore" => "gitignore",
    ),
    build: None,
    try_it: &[
        ("wisp logs {{name}}", "a line per run, every minute"),
        ("wisp invoke {{name}}", "run it now"),
    ],
};

const QUEUE_WORKER: Template = Template {
    files: files!("queue-worker":
        "wisp.toml" => "wisp.toml",
        "app.py" => "app.py",
        "README.md" => "README.md",
        ".gitignore" => "gitignore",
    ),
    build: None,
    try_it: &[
        (
            r#"wisp queue send {{name}}-jobs '{"task":"resize","id":7}'"#,
            "prints the message's id",
        ),
        ("wisp logs {{name}}", "processed {'task': 'resize', 'id': 7}"),
    ],
};

impl TemplateName {
    fn template(self) -> &'static Template {
        match self {
            TemplateName::HttpRust => &HTTP_RUST,
            TemplateName::EventRust => &EVENT_RUST,
            TemplateName::Python => &PYTHON,
            TemplateName::Node => &NODE,
            TemplateName::Cron => &CRON,
            TemplateName::QueueWorker => &QUEUE_WORKER,
        }
    }

    /// The name `--template` takes.
    fn cli_name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

pub fn run(args: InitArgs) -> anyhow::Result<()> {
    if args.list {
        list();
        return Ok(());
    }
    let Some(dir) = args.dir else {
        return Err(
            CliError::new(Exit::Usage, "name the directory to create the app in")
                .hint("wisp init [--template T] DIR; `wisp init --list` lists the templates")
                .into(),
        );
    };
    let name = app_name(&dir, args.name.as_deref())?;
    let template = args.template.template();
    let files = render(template, &name);
    check_manifest(&files, &dir, &name)?;
    let existed = prepare_dir(&dir, args.force)?;

    println!(
        "Created app `{name}` from the `{}` template in {}:",
        args.template.cli_name(),
        dir.display()
    );
    for (path, text) in &files {
        let target = dir.join(path);
        let replaced = existed && target.exists();
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create `{}`", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("failed to write `{}`", target.display()))?;
        println!("  {path}{}", if replaced { " (replaced)" } else { "" });
    }
    print_next_steps(template, &name, &dir);
    Ok(())
}

/// `wisp init --list`: each template with what it is, the default marked.
fn list() {
    for template in TemplateName::value_variants() {
        let Some(value) = template.to_possible_value() else {
            continue;
        };
        let help = value.get_help().map(ToString::to_string).unwrap_or_default();
        let mark = if *template == DEFAULT_TEMPLATE {
            " [default]"
        } else {
            ""
        };
        println!("{:<13} {help}{mark}", value.get_name());
    }
}

/// The app's name: `--name`, else DIR's last component (of its absolute form for `.`),
/// checked against the DNS-label rules.
fn app_name(dir: &Path, name: Option<&str>) -> anyhow::Result<String> {
    if let Some(name) = name {
        return FunctionName::new(name)
            .map(|n| n.to_string())
            .map_err(|e| CliError::new(Exit::Usage, format!("--name: {}", app_name_error(e))).into());
    }
    let last = match dir.file_name() {
        Some(last) => Some(last.to_os_string()),
        // `.`, `..` or `/`: name it after the directory they stand for.
        None => dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_os_string())),
    };
    let Some(last) = last else {
        return Err(CliError::new(
            Exit::Usage,
            format!("cannot name the app after `{}`", dir.display()),
        )
        .hint("give it a name with --name NAME")
        .into());
    };
    let last = last.to_string_lossy();
    FunctionName::new(last.as_ref())
        .map(|n| n.to_string())
        .map_err(|e| {
            let example = suggest_name(&last).unwrap_or_else(|| "NAME".to_owned());
            CliError::new(Exit::Usage, app_name_error(e))
                .hint(format!(
                    "the app takes its directory's name unless --name gives another: e.g. --name {example}"
                ))
                .into()
        })
}

/// Core's name error, worded for the app (as `wisp_manifest` words it).
fn app_name_error(e: NameError) -> String {
    const WHAT: &str = "app name";
    match e {
        NameError::Empty { name, .. } => NameError::Empty { what: WHAT, name },
        NameError::TooLong { name, .. } => NameError::TooLong { what: WHAT, name },
        NameError::BadCharacter { name, .. } => NameError::BadCharacter { what: WHAT, name },
        NameError::TrailingHyphen { name, .. } => NameError::TrailingHyphen { what: WHAT, name },
    }
    .to_string()
}

/// A valid name close to `text` (`My_App` → `my-app`), if there is one.
fn suggest_name(text: &str) -> Option<String> {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || (c.is_ascii_digit() && !out.is_empty()) {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(63);
    let out = out.trim_end_matches('-').to_owned();
    FunctionName::new(out.as_str()).ok().map(|n| n.to_string())
}

/// The template's files with their placeholders filled in.
fn render(template: &Template, name: &str) -> Vec<(&'static str, String)> {
    template
        .files
        .iter()
        .map(|(path, text)| (*path, fill(text, name)))
        .collect()
}

fn fill(text: &str, name: &str) -> String {
    text.replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
}

/// Checks the rendered `wisp.toml` as `wisp deploy` will: a name that is valid for the app
/// may still make a queue name too long (`NAME-jobs-dlq`).
fn check_manifest(files: &[(&str, String)], dir: &Path, name: &str) -> anyhow::Result<()> {
    let Some((_, text)) = files.iter().find(|(path, _)| *path == "wisp.toml") else {
        return Ok(());
    };
    match wisp_manifest::parse(text, &dir.join("wisp.toml")) {
        Ok(_) => Ok(()),
        Err(e) => Err(CliError::new(
            Exit::Usage,
            format!("the name `{name}` does not fit this template: {}", e.message),
        )
        .hint("choose a shorter name with --name NAME")
        .into()),
    }
}

/// Creates `dir` if missing; refuses one that holds anything but `.git` unless `force`.
/// Returns whether it existed.
fn prepare_dir(dir: &Path, force: bool) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            // A fresh `git init` leaves `.git`: that directory is still empty enough.
            let busy = entries.filter_map(Result::ok).any(|e| e.file_name() != ".git");
            if busy && !force {
                return Err(CliError::new(
                    Exit::Usage,
                    format!("`{}` is not empty", dir.display()),
                )
                .hint(
                    "name a new or empty directory, or pass --force to write the template's files into it (replacing files of the same names)",
                )
                .into());
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
            Ok(false)
        }
        Err(e) if dir.exists() && !dir.is_dir() => Err(CliError::new(
            Exit::Usage,
            format!("`{}` is not a directory ({e})", dir.display()),
        )
        .into()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("failed to read `{}`", dir.display()))),
    }
}

fn print_next_steps(template: &Template, name: &str, dir: &Path) {
    let here = dir.components().all(|c| c == std::path::Component::CurDir);
    let (cd, there) = if here {
        (String::new(), "this directory".to_owned())
    } else {
        let dir = shell_quote(&dir.display().to_string());
        (format!("cd {dir} && "), dir)
    };
    println!();
    println!("Next steps:");
    match template.build {
        Some((target, build)) => {
            println!("  {target}    # once");
            println!("  {cd}{build} && wisp up");
        }
        None => println!("  {cd}wisp up"),
    }
    println!("Then, in another terminal in {there}:");
    let width = template
        .try_it
        .iter()
        .map(|(command, _)| fill(command, name).len())
        .max()
        .unwrap_or_default();
    for (command, comment) in template.try_it {
        println!("  {:<width$}    # {}", fill(command, name), fill(comment, name));
    }
    println!("README.md says more, and how to change it.");
}

/// `text` as one shell word: as it is when it needs no quoting, else in single quotes.
fn shell_quote(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./,:@+=%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_a_manifest_naming_its_function() {
        for t in TemplateName::value_variants() {
            let files = render(t.template(), "my-app");
            for (path, text) in &files {
                assert!(!text.contains("{{"), "{t:?} {path} keeps a placeholder");
                assert!(!text.is_empty(), "{t:?} {path} is empty");
            }
            let (_, manifest) = files.iter().find(|(p, _)| *p == "wisp.toml").unwrap();
            let manifest = wisp_manifest::parse(manifest, Path::new("x/wisp.toml")).unwrap();
            assert_eq!(manifest.app, "my-app");
            let names: Vec<&str> = manifest.functions.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(names, ["my-app"], "{t:?}");
            assert!(files.iter().any(|(p, _)| *p == "README.md"), "{t:?}");
        }
    }

    #[test]
    fn the_rust_templates_deploy_what_cargo_builds() {
        let files = render(&HTTP_RUST, "my-app");
        let wisp = &files.iter().find(|(p, _)| *p == "wisp.toml").unwrap().1;
        assert!(
            wisp.contains("target/wasm32-wasip2/release/my_app.wasm"),
            "{wisp}"
        );
        let files = render(&EVENT_RUST, "my-app");
        let wisp = &files.iter().find(|(p, _)| *p == "wisp.toml").unwrap().1;
        assert!(
            wisp.contains("target/wasm32-wasip1/release/my-app.wasm"),
            "{wisp}"
        );
    }

    #[test]
    fn names_come_from_the_directory_or_name() {
        assert_eq!(app_name(Path::new("/tmp/x/hello-2"), None).unwrap(), "hello-2");
        assert_eq!(app_name(Path::new("a/b/"), None).unwrap(), "b");
        assert_eq!(app_name(Path::new("My_App"), Some("mine")).unwrap(), "mine");
        assert!(app_name(Path::new("My_App"), None).is_err());
        assert!(app_name(Path::new("ok"), Some("Not ok")).is_err());
    }

    #[test]
    fn suggestions_are_valid_names() {
        assert_eq!(suggest_name("My_App").as_deref(), Some("my-app"));
        assert_eq!(suggest_name("2fast  4you!").as_deref(), Some("fast-4you"));
        assert_eq!(suggest_name("___"), None);
        assert_eq!(suggest_name(&"a".repeat(80)).unwrap().len(), 63);
    }

    #[test]
    fn long_names_that_overflow_a_queue_name_are_refused() {
        let name = format!("a{}", "b".repeat(55));
        let files = render(&QUEUE_WORKER, &name);
        assert!(check_manifest(&files, Path::new("d"), &name).is_err());
        let files = render(&PYTHON, &name);
        assert!(check_manifest(&files, Path::new("d"), &name).is_ok());
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_quote("a/b-c"), "a/b-c");
        assert_eq!(shell_quote("my dir"), "'my dir'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
