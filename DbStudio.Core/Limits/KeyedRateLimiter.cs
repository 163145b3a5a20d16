// A token bucket per key (a client address, an account) that reads the time from an injected TimeProvider, so tests
// move the clock instead of waiting, and that tells the truth about when the next permit comes (Retry-After).
// System.Threading.RateLimiting's limiters run their own timers on the wall clock and take no TimeProvider.
namespace DbStudio.Core.Limits;

public sealed class KeyedRateLimiter
{
    private sealed class Bucket
    {
        public double Tokens;
        public long At; // TimeProvider timestamp of the last refill
    }

    private readonly TimeProvider _clock;
    private readonly Dictionary<string, Bucket> _buckets = [];
    private readonly Lock _lock = new();
    private long _lastSweep;

    /// <param name="permits">permits per window, and the burst a quiet key may use at once; 0 or less turns the limiter off</param>
    /// <param name="window">the time in which <paramref name="permits"/> come back (one every window / permits)</param>
    public KeyedRateLimiter(TimeProvider clock, int permits, TimeSpan window)
    {
        _clock = clock;
        Permits = permits;
        Window = window;
        _lastSweep = clock.GetTimestamp();
    }

    public int Permits { get; }
    public TimeSpan Window { get; }
    public bool Enabled => Permits > 0 && Window > TimeSpan.Zero;

    /// <summary>Takes a permit for <paramref name="key"/>; when none is left, says how long until the next one.</summary>
    public bool TryAcquire(string key, out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.Zero;
        if (!Enabled) return true;
        var now = _clock.GetTimestamp();
        var perSecond = Permits / Window.TotalSeconds;
        lock (_lock)
        {
            Sweep(now, perSecond);
            if (!_buckets.TryGetValue(key, out var b)) _buckets[key] = b = new Bucket { Tokens = Permits, At = now };
            else Refill(b, now, perSecond);
            if (b.Tokens >= 1)
            {
                b.Tokens -= 1;
                return true;
            }
            retryAfter = TimeSpan.FromSeconds((1 - b.Tokens) * Window.TotalSeconds / Permits);
            return false;
        }
    }

    private void Refill(Bucket b, long now, double perSecond)
    {
        var elapsed = _clock.GetElapsedTime(b.At, now).TotalSeconds;
        if (elapsed > 0) b.Tokens = Math.Min(Permits, b.Tokens + elapsed * perSecond);
        b.At = now;
    }

    /// <summary>Now and then drops the buckets that have refilled completely: they are the same as no bucket.</summary>
    private void Sweep(long now, double perSecond)
    {
        if (_clock.GetElapsedTime(_lastSweep, now) < Window || _buckets.Count < 1024) return;
        _lastSweep = now;
        foreach (var (key, b) in _buckets.ToList())
        {
            Refill(b, now, perSecond);
            if (b.Tokens >= Permits) _buckets.Remove(key);
        }
    }

    /// <summary>Whole seconds for a Retry-After header: rounded up, so a client that waits that long gets a permit.</summary>
    public static int Seconds(TimeSpan retryAfter) => Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
}
