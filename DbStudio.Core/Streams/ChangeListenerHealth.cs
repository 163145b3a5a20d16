// /healthz: the live stream depends on the instance's LISTEN connection; while it is down (database restart, network)
// streams stay open and catch up from the log every few seconds, and other instances' cache invalidations wait.
using DbStudio.Core.Platform;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace DbStudio.Core.Streams;

public sealed class ChangeListenerHealth(PlatformListener listener, ServerChangeListeners servers, ChangeHub hub) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default) =>
        Task.FromResult(listener.Listening && servers.Listening
            ? HealthCheckResult.Healthy($"listening; {hub.SubscriberCount} stream subscribers")
            : HealthCheckResult.Degraded("the notification listener is not connected to PostgreSQL (reconnecting)"));
}
