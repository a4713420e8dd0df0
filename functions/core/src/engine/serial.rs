//! Serial execution of multi-partition plans. DataFusion merges partitions
//! (`CoalescePartitionsExec`, or a `RepartitionExec` into one partition) by spawning a tokio
//! task per input partition; a WASI guest has no tokio runtime, and the function runs with
//! one target partition anyway. Plans that still have several partitions (a union of
//! tables, as `METADATA$FILENAME` builds) are merged here by reading the partitions one
//! after another, on every target, so native and WASI run the same plan.

use std::fmt;
use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

/// Merges its input's partitions into one by reading them in order, spawning nothing.
#[derive(Debug)]
pub struct SerialCoalesceExec {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl SerialCoalesceExec {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        // Merging partitions loses their orderings.
        let mut eq = input.equivalence_properties().clone();
        eq.clear_orderings();
        eq.clear_per_partition_constants();
        let properties = PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning(1),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        Self {
            input,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for SerialCoalesceExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SerialCoalesceExec")
    }
}

impl ExecutionPlan for SerialCoalesceExec {
    fn name(&self) -> &str {
        "SerialCoalesceExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self::new(input))),
            _ => datafusion::common::internal_err!("SerialCoalesceExec has exactly one child"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return datafusion::common::internal_err!(
                "SerialCoalesceExec has one partition, not {partition}"
            );
        }
        let input = Arc::clone(&self.input);
        let count = input.output_partitioning().partition_count();
        let batches = futures::stream::iter(0..count)
            .map(move |i| input.execute(i, Arc::clone(&context)))
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            batches,
        )))
    }
}

/// The physical optimizer rule that puts [`SerialCoalesceExec`] in place of every merge of
/// several partitions into one. Registered last, after DataFusion's own rules.
#[derive(Debug, Default)]
pub struct SerialMerge;

impl PhysicalOptimizerRule for SerialMerge {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let merge = |input: &Arc<dyn ExecutionPlan>, fetch: Option<usize>| {
                let serial: Arc<dyn ExecutionPlan> =
                    Arc::new(SerialCoalesceExec::new(Arc::clone(input)));
                match fetch {
                    Some(n) => Arc::new(GlobalLimitExec::new(serial, 0, Some(n))),
                    None => serial,
                }
            };
            if let Some(c) = node.downcast_ref::<CoalescePartitionsExec>()
                && c.input().output_partitioning().partition_count() > 1
            {
                return Ok(Transformed::yes(merge(c.input(), c.fetch())));
            }
            if let Some(r) = node.downcast_ref::<RepartitionExec>()
                && r.partitioning().partition_count() == 1
                && r.input().output_partitioning().partition_count() > 1
                && !r.preserve_order()
            {
                return Ok(Transformed::yes(merge(r.input(), None)));
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "xstage_serial_merge"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
