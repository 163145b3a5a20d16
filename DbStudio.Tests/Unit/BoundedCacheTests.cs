// The size-limited cache behind keys, sessions and access settings (BoundedCache over IMemoryCache): expiry on the
// injected clock, removal by what the platform signals name, and no clear-everything cliff at the size limit.
using DbStudio.Core.Platform;
using Microsoft.Extensions.Time.Testing;

namespace DbStudio.Tests.Unit;

public class BoundedCacheTests
{
    [Fact]
    public void Entries_expire_on_the_injected_clock()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        using var cache = new BoundedCache<string, int>(clock, sizeLimit: 10);
        cache.Set("short", 1, TimeSpan.FromSeconds(30));
        cache.Set("kept", 2);
        clock.Advance(TimeSpan.FromSeconds(29));
        Assert.True(cache.TryGet("short", out var v) && v == 1);
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.False(cache.TryGet("short", out _));
        Assert.True(cache.TryGet("kept", out _));
    }

    [Fact]
    public void Entries_are_removed_by_what_they_hold()
    {
        using var cache = new BoundedCache<(string Project, int Table), string>(TimeProvider.System, sizeLimit: 100);
        cache.Set(("a", 1), "x");
        cache.Set(("a", 2), "y");
        cache.Set(("b", 1), "z");
        cache.RemoveWhere((key, _) => key.Project == "a");
        Assert.False(cache.TryGet(("a", 1), out _));
        Assert.False(cache.TryGet(("a", 2), out _));
        Assert.True(cache.TryGet(("b", 1), out _));
        cache.RemoveWhere((_, value) => value == "z");
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void Past_the_size_limit_it_stays_near_full_instead_of_starting_over()
    {
        using var cache = new BoundedCache<int, int>(TimeProvider.System, sizeLimit: 100);
        for (var i = 0; i < 150; i++) cache.Set(i, i);
        Assert.InRange(cache.Count, 90, 100); // compaction drops a few (least recently used), never all
    }
}
