// /healthz: the live stream depends on the change listener's LISTEN connection; while it is down (database restart,
// network) streams stay open but receive nothing until it reconnects and catches up from the log.
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace DbStudio.Core.Streams;

public sealed class ChangeListenerHealth(ChangeHub hub) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default) =>
        Task.FromResult(hub.Listening
            ? HealthCheckResult.Healthy($"listening; {hub.SubscriberCount} stream subscribers")
            : HealthCheckResult.Degraded("the change listener is not connected to PostgreSQL (reconnecting)"));
}
