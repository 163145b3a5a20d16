// A TimeProvider that moves only when a test says so: rate limits are tested without waiting or depending on speed.
namespace DbStudio.Tests.Infrastructure;

public sealed class ManualClock : TimeProvider
{
    private DateTimeOffset _now = DateTimeOffset.UtcNow;
    private readonly Lock _lock = new();

    public override DateTimeOffset GetUtcNow() { lock (_lock) return _now; }
    public override long GetTimestamp() { lock (_lock) return _now.UtcTicks; }
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public void Advance(TimeSpan by) { lock (_lock) _now += by; }
}
