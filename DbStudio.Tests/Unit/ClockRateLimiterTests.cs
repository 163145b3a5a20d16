// The rate limiters on an injected clock: they refill only when the TimeProvider says time has passed, and a refusal
// carries the true time until a permit frees up.
using System.Threading.RateLimiting;
using DbStudio.Core.RateLimiting;
using Microsoft.Extensions.Time.Testing;

namespace DbStudio.Tests.Unit;

public class ClockRateLimiterTests
{
    private static TimeSpan? RetryAfter(RateLimitLease lease) =>
        lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : null;

    [Fact]
    public void Token_bucket_refills_by_whole_periods_of_the_injected_clock()
    {
        var clock = new FakeTimeProvider();
        using var bucket = new ClockTokenBucket(clock, limit: 3, perPeriod: 2, period: TimeSpan.FromSeconds(10));
        for (var i = 0; i < 3; i++) Assert.True(bucket.AttemptAcquire().IsAcquired);
        var refused = bucket.AttemptAcquire();
        Assert.False(refused.IsAcquired);
        Assert.Equal(TimeSpan.FromSeconds(10), RetryAfter(refused));
        Assert.Null(bucket.IdleDuration);

        clock.Advance(TimeSpan.FromSeconds(4));
        Assert.Equal(TimeSpan.FromSeconds(6), RetryAfter(bucket.AttemptAcquire()));
        clock.Advance(TimeSpan.FromSeconds(6));
        Assert.True(bucket.AttemptAcquire().IsAcquired);
        Assert.True(bucket.AttemptAcquire().IsAcquired);
        Assert.False(bucket.AttemptAcquire().IsAcquired);
        // Two periods later it is full again (3, not 4) and counts as idle.
        clock.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(3, bucket.GetStatistics()!.CurrentAvailablePermits);
        Assert.NotNull(bucket.IdleDuration);
    }

    [Fact]
    public void Sliding_window_frees_a_permit_when_the_oldest_grant_leaves_the_window()
    {
        var clock = new FakeTimeProvider();
        using var window = new ClockSlidingWindow(clock, limit: 2, window: TimeSpan.FromMinutes(1));
        Assert.True(window.AttemptAcquire().IsAcquired);
        clock.Advance(TimeSpan.FromSeconds(15));
        Assert.True(window.AttemptAcquire().IsAcquired);
        Assert.Equal(TimeSpan.FromSeconds(45), RetryAfter(window.AttemptAcquire()));
        clock.Advance(TimeSpan.FromSeconds(45));
        Assert.True(window.AttemptAcquire().IsAcquired);
        Assert.Equal(TimeSpan.FromSeconds(15), RetryAfter(window.AttemptAcquire()));
        Assert.Null(window.IdleDuration);
        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(TimeSpan.FromMinutes(1), window.IdleDuration);
    }
}
