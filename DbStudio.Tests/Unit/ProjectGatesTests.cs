// Each project's turn at the database (ProjectGates): at most MaxConcurrentPerProject at once, the rest served in
// order from a bounded queue, for at most the queue timeout; projects do not wait for each other.
using DbStudio.Core;
using DbStudio.Core.Projects;
using Microsoft.Extensions.Options;

namespace DbStudio.Tests.Unit;

public class ProjectGatesTests
{
    private static ProjectGates Gates(int permits, int queue, TimeSpan? timeout = null) => new(Options.Create(new DbStudioOptions
    {
        Rest = new RestOptions
        {
            MaxConcurrentPerProject = permits, ProjectQueueLimit = queue, ProjectQueueTimeout = timeout ?? TimeSpan.FromSeconds(30),
        },
    }));

    [Fact]
    public async Task Waiting_requests_get_their_turn_in_the_order_they_came()
    {
        await using var gates = Gates(permits: 1, queue: 10);
        var ct = TestContext.Current.CancellationToken;
        var first = await gates.EnterAsync("p", ct);
        Assert.NotNull(first);
        var order = new List<int>();
        var waiting = Enumerable.Range(0, 5).Select(async i =>
        {
            using var turn = await gates.EnterAsync("p", ct);
            Assert.NotNull(turn);
            lock (order) order.Add(i);
        }).ToList();
        Assert.All(waiting, w => Assert.False(w.IsCompleted));
        // Another project is not held up by this one's queue.
        using (var other = await gates.EnterAsync("q", ct)) Assert.NotNull(other);
        first!.Dispose();
        await Task.WhenAll(waiting);
        Assert.Equal([0, 1, 2, 3, 4], order);
    }

    [Fact]
    public async Task A_full_queue_answers_at_once_and_a_long_wait_gives_up_at_the_timeout()
    {
        await using var gates = Gates(permits: 1, queue: 1, timeout: TimeSpan.FromMilliseconds(200));
        var ct = TestContext.Current.CancellationToken;
        using var running = await gates.EnterAsync("p", ct);
        var queued = gates.EnterAsync("p", ct).AsTask();
        var refused = gates.EnterAsync("p", ct);
        Assert.True(refused.IsCompleted); // no room in the queue: no waiting
        Assert.Null(await refused);
        Assert.Null(await queued); // its turn did not come in time
        // A caller that goes away is not told "busy": its cancellation stands.
        using var gone = new CancellationTokenSource();
        var leaving = gates.EnterAsync("p", gone.Token).AsTask();
        await gone.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving);
    }
}
