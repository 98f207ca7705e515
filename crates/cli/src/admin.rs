//! `plumb admin health` and `plumb admin action list|run`: check health scripts and resource
//! actions offline, against an object in a file, with Argo CD's customizations.

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use plumb_engine::actions;
use plumb_engine::health::HealthAssessor;
use plumb_engine::settings::{HealthScript, Settings};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Assess the health of an object in a file, as plumb (and Argo CD) would.
    Health(HealthArgs),
    /// List or run resource actions on an object in a file.
    #[command(subcommand)]
    Action(ActionCommand),
}

#[derive(Clone, Copy, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Where custom scripts come from (at most one of Lua file, directory, `argocd-cm`).
#[derive(Args)]
pub struct CustomizationArgs {
    /// A `resource_customizations` directory (`<group>/<kind>/health.lua`, `actions/…`).
    #[arg(long, value_name = "DIR", conflicts_with = "argocd_cm")]
    customizations: Option<PathBuf>,
    /// An `argocd-cm` ConfigMap manifest whose `resource.customizations.*` keys apply.
    #[arg(long = "argocd-cm", value_name = "FILE")]
    argocd_cm: Option<PathBuf>,
}

#[derive(Args)]
pub struct HealthArgs {
    /// A YAML or JSON file with one object.
    object: PathBuf,
    /// A Lua health script to run on the object (Argo CD's contract: global `obj`, returns
    /// a table with `status` and `message`).
    #[arg(long, value_name = "SCRIPT", conflicts_with_all = ["customizations", "argocd_cm"])]
    lua: Option<PathBuf>,
    #[command(flatten)]
    customization: CustomizationArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: OutputFormat,
}

#[derive(Subcommand)]
pub enum ActionCommand {
    /// List the actions an object offers.
    List(ActionListArgs),
    /// Run an action and print the objects it changes or creates.
    Run(ActionRunArgs),
}

#[derive(Args)]
pub struct ActionListArgs {
    /// A YAML or JSON file with one object.
    object: PathBuf,
    #[command(flatten)]
    customization: CustomizationArgs,
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: OutputFormat,
}

#[derive(Args)]
pub struct ActionRunArgs {
    /// A YAML or JSON file with one object.
    object: PathBuf,
    /// The action's name.
    action: String,
    /// An action parameter `NAME=VALUE` (repeatable), passed to the script as `actionParams`.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    #[command(flatten)]
    customization: CustomizationArgs,
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: OutputFormat,
}

pub fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Health(args) => health(args),
        AdminCommand::Action(ActionCommand::List(args)) => action_list(args),
        AdminCommand::Action(ActionCommand::Run(args)) => action_run(args),
    }
}

/// Reads exactly one object from a YAML (or JSON) file.
fn read_object(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| {
        // serde-saphyr follows its message with a source snippet over several lines; the
        // first line has the position and the cause, which is what an error line needs.
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default().trim();
        let first = first.strip_prefix("error: ").unwrap_or(first);
        anyhow::anyhow!("{}: not valid YAML: {first}", path.display())
    })?;
    let documents: Vec<Value> = documents.into_iter().filter(|d| !d.is_null()).collect();
    match documents.as_slice() {
        [object @ Value::Object(_)] => Ok(object.clone()),
        [_] => bail!(
            "{}: the document is not an object (a mapping)",
            path.display()
        ),
        [] => bail!("{}: no object in the file", path.display()),
        many => bail!(
            "{}: expected one object, found {} documents",
            path.display(),
            many.len()
        ),
    }
}

fn load_settings(args: &CustomizationArgs) -> anyhow::Result<Settings> {
    let mut settings = match &args.argocd_cm {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Settings::from_config_map_manifest(&text)
                .with_context(|| format!("reading {}", path.display()))?
        }
        None => Settings::default(),
    };
    if let Some(dir) = &args.customizations {
        settings.add_customizations_dir(dir)?;
    }
    Ok(settings)
}

fn health(args: HealthArgs) -> anyhow::Result<()> {
    let object = read_object(&args.object)?;
    let mut settings = load_settings(&args.customization)?;
    if let Some(script) = &args.lua {
        let script = std::fs::read_to_string(script)
            .with_context(|| format!("reading {}", script.display()))?;
        // The given script applies to this object whatever its kind.
        settings.health_scripts.insert(
            0,
            HealthScript {
                group: "*".to_string(),
                kind: "*".to_string(),
                script,
            },
        );
    }
    let assessor = HealthAssessor::new(settings)?;
    let health = assessor.assess(&object);
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string(&health)?),
        OutputFormat::Text => match health {
            Some(health) if health.message.is_empty() => println!("{}", health.status),
            Some(health) => println!("{}: {}", health.status, health.message),
            None => println!(
                "no health assessment for {}/{}",
                plumb_engine::json::group(&object),
                plumb_engine::json::kind(&object)
            ),
        },
    }
    Ok(())
}

fn action_list(args: ActionListArgs) -> anyhow::Result<()> {
    let object = read_object(&args.object)?;
    let assessor = HealthAssessor::new(load_settings(&args.customization)?)?;
    let listed = actions::list_actions(assessor.settings(), assessor.lua(), &object)?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string(&listed)?),
        OutputFormat::Text => {
            if listed.is_empty() {
                println!("no actions");
            }
            for action in listed {
                let state = if action.disabled {
                    "disabled"
                } else {
                    "enabled"
                };
                println!("{}\t{state}", action.name);
            }
        }
    }
    Ok(())
}

fn action_run(args: ActionRunArgs) -> anyhow::Result<()> {
    let object = read_object(&args.object)?;
    let assessor = HealthAssessor::new(load_settings(&args.customization)?)?;
    let mut params = BTreeMap::new();
    for param in &args.params {
        let Some((name, value)) = param.split_once('=') else {
            bail!("--param {param:?} is not NAME=VALUE");
        };
        params.insert(name.to_string(), value.to_string());
    }
    // Argo CD stamps restarts with second precision in UTC.
    let now = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .context("formatting the current time")?;
    let impacted = actions::run_action(
        assessor.settings(),
        assessor.lua(),
        &object,
        &args.action,
        &params,
        &now,
    )?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string(&impacted)?),
        OutputFormat::Text => {
            for (index, resource) in impacted.iter().enumerate() {
                if index > 0 {
                    println!("---");
                }
                let operation = match resource.operation {
                    plumb_engine::lua::ActionOperation::Patch => "patch",
                    plumb_engine::lua::ActionOperation::Create => "create",
                };
                println!("# {operation}");
                print!("{}", plumb_engine::diff::to_yaml(&resource.object));
            }
        }
    }
    Ok(())
}
