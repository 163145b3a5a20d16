using DbStudio.Core.Rest;

namespace DbStudio.Tests.Unit;

public class RestMetricsTests
{
    private sealed class Clock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void Counts_per_minute_and_level_and_forgets_after_an_hour()
    {
        var clock = new Clock(new DateTimeOffset(2026, 1, 1, 12, 0, 30, TimeSpan.Zero));
        var m = new RestMetrics(clock);
        m.Record("p", RequestLevel.Anon);
        m.Record("p", RequestLevel.Anon);
        m.Record("p", RequestLevel.Admin);
        clock.Now = clock.Now.AddMinutes(1);
        m.Record("p", RequestLevel.User);
        m.Record("other", RequestLevel.Refused);
        var (minutes, perLevel) = m.Recent("p", 3);
        Assert.Equal(3, minutes.Length);
        Assert.Equal([0L, 2, 0], perLevel[(int)RequestLevel.Anon]);
        Assert.Equal([0L, 1, 0], perLevel[(int)RequestLevel.Admin]);
        Assert.Equal([0L, 0, 1], perLevel[(int)RequestLevel.User]);
        Assert.Equal([0L, 0, 0], perLevel[(int)RequestLevel.Refused]);
        clock.Now = clock.Now.AddMinutes(RestMetrics.Minutes); // the same slot, an hour later: old counts are gone
        m.Record("p", RequestLevel.Anon);
        Assert.Equal(1, m.Recent("p", 1).PerLevel[(int)RequestLevel.Anon][0]);
    }
}
