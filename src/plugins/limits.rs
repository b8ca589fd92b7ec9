//! The limits plugin: rate limits, concurrency and budgets (the machinery is in
//! [`crate::limits`]). It gates large bodies per caller before they are read, admits once the
//! model is known, and settles at the end.

use super::{Completion, Plugin, PluginFuture, RequestCtx};
use crate::limits::Limits;

impl Plugin for Limits {
    fn name(&self) -> &'static str {
        "limits"
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx,
        head: &'a http::request::Parts,
    ) -> PluginFuture<'a> {
        Box::pin(self.gate_body(ctx, head))
    }

    fn on_routed<'a>(&'a self, ctx: &'a mut RequestCtx) -> PluginFuture<'a> {
        Box::pin(self.check(ctx))
    }

    fn on_complete(&self, ctx: &RequestCtx, completion: &Completion) {
        self.settle(ctx, completion);
    }
}
