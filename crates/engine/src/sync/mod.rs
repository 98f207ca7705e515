//! Sync: planning (pure) and execution against a cluster.

pub mod execute;
pub mod options;
pub mod plan;
pub mod retry;

pub use options::{DeletionOption, PropagationPolicy, SyncOptionError, SyncOptions};
pub use plan::{
    KIND_ORDER, PlanRequest, PlanResource, ResourceSelector, Step, SyncPhase, SyncPlan, SyncTask,
    TaskAction, TaskProgress, kind_rank, plan, plan_post_delete, running_task_progress,
    step_gates_health,
};
