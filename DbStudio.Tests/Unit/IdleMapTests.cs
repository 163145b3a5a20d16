// What is kept per project forgets idle projects (issue 17): IdleMap drops entries nobody asked for within the idle
// time, on the injected clock, and keeps those in use; the connection budget is sized from the server's max_connections.
using DbStudio.Core.Projects;
using Microsoft.Extensions.Time.Testing;

namespace DbStudio.Tests.Unit;

public class IdleMapTests
{
    [Fact]
    public void Entries_nobody_asked_for_within_the_idle_time_are_dropped_and_those_in_use_stay()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        var map = new IdleMap<string>(clock, TimeSpan.FromMinutes(10));
        map.GetOrAdd("idle", k => k + "-value");
        map.GetOrAdd("busy", k => k + "-value");
        for (var minute = 0; minute < 12; minute++)
        {
            clock.Advance(TimeSpan.FromMinutes(1));
            Assert.Equal("busy-value", map.GetOrAdd("busy", _ => "recreated")); // in use: kept, not recreated
        }
        Assert.False(map.TryGetValue("idle", out _));
        Assert.Equal(1, map.Count);
        Assert.Equal("again", map.GetOrAdd("idle", _ => "again")); // asked again: made again
    }

    [Fact]
    public void Set_replaces_and_remove_forgets()
    {
        var clock = new FakeTimeProvider();
        var map = new IdleMap<int>(clock, TimeSpan.FromMinutes(1));
        map.Set("a", 1);
        map.Set("a", 2);
        Assert.True(map.TryGetValue("a", out var v) && v == 2);
        Assert.True(map.Remove("a"));
        Assert.False(map.TryGetValue("a", out _));
    }

    [Theory]
    [InlineData(200, 3, 20, 125)]   // the embedded server
    [InlineData(500, 3, 20, 350)]   // the test and benchmark clusters
    [InlineData(2500, 3, 20, 1850)]
    [InlineData(40, 3, 20, 16)]     // never below 16
    public void The_connection_budget_is_three_quarters_of_what_the_server_leaves(int max, int superuser, int reserve, int expected) =>
        Assert.Equal(expected, ProjectConnectionPool.BudgetFor(max, superuser, reserve));
}
