// Each project's turn at the database: at most Rest:MaxConcurrentPerProject of its statements run at once, the others
// wait in order (first come, first served) in a bounded queue, for at most Rest:ProjectQueueTimeout. One busy project
// cannot take the server, and the rest wait their turn instead of all competing for the CPU. System.Threading.
// RateLimiting's partitioned ConcurrencyLimiter does it; idle partitions are dropped by the limiter itself, so the
// projects seen once do not stay in memory.
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace DbStudio.Core.Projects;

public sealed class ProjectGates : IAsyncDisposable
{
    private readonly PartitionedRateLimiter<string> _limiter;
    private readonly RestOptions _options;

    public ProjectGates(IOptions<DbStudioOptions> options)
    {
        _options = options.Value.Rest;
        var permits = _options.MaxConcurrentPerProject;
        var queue = _options.ProjectQueueLimit;
        _limiter = PartitionedRateLimiter.Create<string, string>(project => RateLimitPartition.GetConcurrencyLimiter(project,
            _ => new ConcurrencyLimiterOptions
            {
                PermitLimit = permits, QueueLimit = queue, QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            }));
    }

    /// <summary>
    /// Waits for the project's turn; the lease is the turn (dispose it when done). Null when the project's queue is full
    /// or the turn did not come within the queue timeout.
    /// </summary>
    public ValueTask<RateLimitLease?> EnterAsync(string projectId, CancellationToken ct)
    {
        // A free turn with nobody waiting before it (the limiter keeps first come, first served) is taken at once:
        // no timer is started for the queue timeout, which the usual request — its project not busy — never needs.
        var now = _limiter.AttemptAcquire(projectId);
        if (now.IsAcquired) return ValueTask.FromResult<RateLimitLease?>(now);
        now.Dispose();
        return WaitAsync(projectId, ct);
    }

    private async ValueTask<RateLimitLease?> WaitAsync(string projectId, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(_options.ProjectQueueTimeout);
        RateLimitLease lease;
        try { lease = await _limiter.AcquireAsync(projectId, 1, deadline.Token); }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested) { return null; }
        if (lease.IsAcquired) return lease;
        lease.Dispose();
        return null;
    }

    public ValueTask DisposeAsync() => _limiter.DisposeAsync();
}
