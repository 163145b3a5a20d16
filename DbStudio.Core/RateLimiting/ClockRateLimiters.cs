// Rate limiters that read the time from an injected TimeProvider. System.Threading.RateLimiting's limiters take no
// TimeProvider (they replenish on their own timers and the partitioned limiter's 100 ms heartbeat, on the machine's
// clock), so a test could only race the wall clock. These refill lazily from TimeProvider.GetTimestamp() on each
// acquisition: under a FakeTimeProvider nothing changes until the test advances the time, and a slow machine makes no
// difference. Neither queues (a request over the limit is refused at once, with the true time to wait as RetryAfter).
// They are System.Threading.RateLimiting RateLimiters, so every rate limit of the app is one family: the HTTP limits
// partition them with ASP.NET Core's rate limiting middleware, the platform's own (KeyedRateLimiter) with
// PartitionedRateLimiter, and the project gates use the library's ConcurrencyLimiter as it is (no clock involved).
using System.Threading.RateLimiting;

namespace DbStudio.Core.RateLimiting;

/// <summary>A token bucket: <c>limit</c> tokens, <c>perPeriod</c> more after each whole <c>period</c>.</summary>
public sealed class ClockTokenBucket : RateLimiter
{
    private readonly TimeProvider _time;
    private readonly int _limit;
    private readonly int _perPeriod;
    private readonly long _periodTicks; // in TimeProvider timestamp units
    private readonly Lock _lock = new();
    private int _tokens;
    private long _periodStart; // timestamp the current (partial) period began
    private long _fullSince;   // timestamp the bucket was last seen full

    public ClockTokenBucket(TimeProvider time, int limit, int perPeriod, TimeSpan period)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(perPeriod, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(period, TimeSpan.Zero);
        _time = time;
        _limit = limit;
        _perPeriod = perPeriod;
        _periodTicks = Math.Max(1, (long)(period.TotalSeconds * time.TimestampFrequency));
        _tokens = limit;
        _periodStart = _fullSince = time.GetTimestamp();
    }

    private void Refill(long now)
    {
        var periods = (now - _periodStart) / _periodTicks;
        if (periods <= 0) return;
        var wasFull = _tokens >= _limit;
        _tokens = (int)Math.Min(_limit, _tokens + periods * _perPeriod);
        _periodStart += periods * _periodTicks;
        if (!wasFull && _tokens >= _limit) _fullSince = _periodStart;
    }

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(permitCount, _limit);
        lock (_lock)
        {
            var now = _time.GetTimestamp();
            Refill(now);
            if (_tokens >= permitCount && (permitCount > 0 || _tokens > 0))
            {
                if (_tokens >= _limit && permitCount > 0) _periodStart = now; // a full bucket starts its refill clock now
                _tokens -= permitCount;
                return ClockLease.Acquired;
            }
            var periodsNeeded = (Math.Max(1, permitCount) - _tokens + _perPeriod - 1) / _perPeriod;
            var wait = periodsNeeded * _periodTicks - (now - _periodStart);
            return ClockLease.Refused(TimeSpan.FromSeconds((double)wait / _time.TimestampFrequency));
        }
    }

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
        ValueTask.FromResult(AttemptAcquireCore(permitCount));

    public override RateLimiterStatistics GetStatistics()
    {
        lock (_lock)
        {
            Refill(_time.GetTimestamp());
            return new RateLimiterStatistics { CurrentAvailablePermits = _tokens };
        }
    }

    /// <summary>Only a full bucket is idle: dropping it then loses nothing (a new one starts full).</summary>
    public override TimeSpan? IdleDuration
    {
        get
        {
            lock (_lock)
            {
                var now = _time.GetTimestamp();
                Refill(now);
                return _tokens >= _limit ? _time.GetElapsedTime(_fullSince, now) : null;
            }
        }
    }
}

/// <summary>A sliding log: at most <c>limit</c> permits in any <c>window</c>; RetryAfter is when the oldest one leaves it.</summary>
public sealed class ClockSlidingWindow : RateLimiter
{
    private readonly TimeProvider _time;
    private readonly long _windowTicks;
    private readonly long[] _granted; // ring buffer of grant timestamps, oldest at _head
    private readonly Lock _lock = new();
    private int _head;
    private int _count;
    private long _lastActivity;

    public ClockSlidingWindow(TimeProvider time, int limit, TimeSpan window)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(window, TimeSpan.Zero);
        _time = time;
        _windowTicks = Math.Max(1, (long)(window.TotalSeconds * time.TimestampFrequency));
        _granted = new long[limit];
        _lastActivity = time.GetTimestamp();
    }

    private void Expire(long now)
    {
        while (_count > 0 && now - _granted[_head] >= _windowTicks)
        {
            _head = (_head + 1) % _granted.Length;
            _count--;
        }
    }

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(permitCount, _granted.Length);
        lock (_lock)
        {
            var now = _time.GetTimestamp();
            Expire(now);
            var free = _granted.Length - _count;
            if (free >= Math.Max(1, permitCount))
            {
                for (var i = 0; i < permitCount; i++) _granted[(_head + _count++) % _granted.Length] = now;
                _lastActivity = now;
                return ClockLease.Acquired;
            }
            // Enough permits are free once the (needed - free) oldest grants have left the window.
            var leaving = _granted[(_head + Math.Max(1, permitCount) - free - 1) % _granted.Length];
            var wait = leaving + _windowTicks - now;
            return ClockLease.Refused(TimeSpan.FromSeconds((double)wait / _time.TimestampFrequency));
        }
    }

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
        ValueTask.FromResult(AttemptAcquireCore(permitCount));

    public override RateLimiterStatistics GetStatistics()
    {
        lock (_lock)
        {
            Expire(_time.GetTimestamp());
            return new RateLimiterStatistics { CurrentAvailablePermits = _granted.Length - _count };
        }
    }

    /// <summary>Idle once nothing granted is still inside the window (a new limiter would be the same): for how long.</summary>
    public override TimeSpan? IdleDuration
    {
        get
        {
            lock (_lock)
            {
                var now = _time.GetTimestamp();
                Expire(now);
                // Empty since the last grant left the window.
                return _count == 0 ? TimeSpan.FromSeconds((double)Math.Max(0, now - _lastActivity - _windowTicks) / _time.TimestampFrequency) : null;
            }
        }
    }
}

/// <summary>A lease that carries RetryAfter when refused.</summary>
public sealed class ClockLease : RateLimitLease
{
    public static readonly ClockLease Acquired = new(true, null);
    private static readonly string[] Names = [MetadataName.RetryAfter.Name];
    private readonly TimeSpan? _retryAfter;

    private ClockLease(bool acquired, TimeSpan? retryAfter)
    {
        IsAcquired = acquired;
        _retryAfter = retryAfter;
    }

    public static ClockLease Refused(TimeSpan retryAfter) => new(false, retryAfter < TimeSpan.Zero ? TimeSpan.Zero : retryAfter);

    public override bool IsAcquired { get; }
    public override IEnumerable<string> MetadataNames => _retryAfter is null ? [] : Names;

    public override bool TryGetMetadata(string metadataName, out object? metadata)
    {
        metadata = metadataName == MetadataName.RetryAfter.Name ? _retryAfter : null;
        return metadata is not null;
    }
}
