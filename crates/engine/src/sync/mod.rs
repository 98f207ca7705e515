//! Sync: planning (pure), and operations carried out against a cluster.

pub mod operation;
pub mod options;
pub mod plan;
pub mod retry;
mod runner;

pub use options::{DeletionOption, PropagationPolicy, SyncOptionError, SyncOptions};
pub use plan::{
    KIND_ORDER, PlanRequest, PlanResource, ResourceSelector, Step, SyncPhase, SyncPlan, SyncTask,
    TaskAction, TaskProgress, kind_rank, plan, plan_post_delete, running_task_progress,
    step_gates_health,
};
