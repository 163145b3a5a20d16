// The platform's own rate limiter on a clock the test moves: bursts, refusal with the true time to wait, refill per key.
using DbStudio.Core.RateLimiting;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Unit;

public class KeyedRateLimiterTests
{
    [Fact]
    public void A_key_gets_its_burst_then_waits_exactly_as_long_as_retry_after_says()
    {
        var clock = new ManualClock();
        using var limiter = new KeyedRateLimiter(clock, permits: 3, window: TimeSpan.FromHours(1));
        for (var i = 0; i < 3; i++) Assert.True(limiter.TryAcquire("a", out _));
        Assert.False(limiter.TryAcquire("a", out var retry));
        Assert.Equal(TimeSpan.FromMinutes(20), retry); // one permit every 3600 / 3 s
        Assert.Equal(1200, KeyedRateLimiter.Seconds(retry));
        Assert.True(limiter.TryAcquire("b", out _)); // another key has its own bucket

        clock.Advance(TimeSpan.FromMinutes(20) - TimeSpan.FromSeconds(1));
        Assert.False(limiter.TryAcquire("a", out retry));
        Assert.Equal(1, KeyedRateLimiter.Seconds(retry)); // the truth: one more second
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True(limiter.TryAcquire("a", out _));
        Assert.False(limiter.TryAcquire("a", out _));

        // A quiet hour refills the burst, never beyond it.
        clock.Advance(TimeSpan.FromHours(5));
        for (var i = 0; i < 3; i++) Assert.True(limiter.TryAcquire("a", out _));
        Assert.False(limiter.TryAcquire("a", out _));
    }

    [Fact]
    public void Zero_permits_turn_the_limiter_off()
    {
        using var limiter = new KeyedRateLimiter(new ManualClock(), permits: 0, window: TimeSpan.FromHours(1));
        for (var i = 0; i < 1000; i++) Assert.True(limiter.TryAcquire("a", out _));
    }
}
