// A token bucket per key (a client address, an account) for code that is not an HTTP endpoint: System.Threading.RateLimiting's
// PartitionedRateLimiter, one ClockTokenBucket per key — the same limiter family as the HTTP rate limits, on the injected
// TimeProvider, so tests move the clock instead of waiting, and a refusal tells the truth about when the next permit
// comes (Retry-After). The partitioned limiter drops a key's bucket once it has been full for a while (a new one starts full).
using System.Threading.RateLimiting;

namespace DbStudio.Core.RateLimiting;

public sealed class KeyedRateLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<string>? _limiter;

    /// <param name="permits">permits per window, and the burst a quiet key may use at once; 0 or less turns the limiter off</param>
    /// <param name="window">the time in which <paramref name="permits"/> come back (one every window / permits)</param>
    public KeyedRateLimiter(TimeProvider clock, int permits, TimeSpan window)
    {
        Permits = permits;
        Window = window;
        if (!Enabled) return;
        var period = TimeSpan.FromTicks(Math.Max(1, window.Ticks / permits));
        _limiter = PartitionedRateLimiter.Create<string, string>(key =>
            RateLimitPartition.Get(key, _ => new ClockTokenBucket(clock, permits, 1, period)));
    }

    public int Permits { get; }
    public TimeSpan Window { get; }
    public bool Enabled => Permits > 0 && Window > TimeSpan.Zero;

    /// <summary>Takes a permit for <paramref name="key"/>; when none is left, says how long until the next one.</summary>
    public bool TryAcquire(string key, out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.Zero;
        if (_limiter is null) return true;
        using var lease = _limiter.AttemptAcquire(key);
        if (lease.IsAcquired) return true;
        if (lease.TryGetMetadata(MetadataName.RetryAfter, out var wait)) retryAfter = wait;
        return false;
    }

    /// <summary>Whole seconds for a Retry-After header: rounded up, so a client that waits that long gets a permit.</summary>
    public static int Seconds(TimeSpan retryAfter) => Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));

    public void Dispose() => _limiter?.Dispose();
}
