// Fan-out: hands ready-made frames to their subscribers. Subscribers are split into partitions (four per core); each
// partition hands out its work in order, one round at a time, as a work item on the thread pool — so writing one change
// to thousands of subscribers is shared by the cores, a subscriber's frames stay in order (it always belongs to the
// same partition), and a thread the OS pauses holds up only its partition. Under load several batches go out per
// round, with one flush per subscriber (a socket send carries many events). Nothing here waits on I/O.
using System.Collections.Concurrent;

namespace DbStudio.Core.Streams;

public sealed class FanOut(TimeProvider clock)
{
    public static readonly int Partitions = 4 * Math.Max(1, Environment.ProcessorCount);

    private readonly Partition[] _partitions = [.. Enumerable.Range(0, Partitions).Select(_ => new Partition(clock))];

    /// <summary>Offers <paramref name="frames"/> (in id order) to each of <paramref name="subscribers"/>.</summary>
    public void Post(StreamFrame[] frames, IReadOnlyList<Subscription> subscribers)
    {
        if (frames.Length == 0 || subscribers.Count == 0) return;
        var parts = new List<Subscription>?[Partitions];
        foreach (var s in subscribers) (parts[s.Partition] ??= []).Add(s);
        for (var i = 0; i < parts.Length; i++)
            if (parts[i] is { } part) _partitions[i].Post(new Work(frames, part));
    }

    private sealed record Work(StreamFrame[] Frames, List<Subscription> Subscribers);

    /// <summary>One partition's queue, drained by at most one thread-pool thread at a time.</summary>
    private sealed class Partition(TimeProvider clock) : IThreadPoolWorkItem
    {
        /// <summary>About this many frames per round before the subscribers touched are flushed.</summary>
        private const int RoundBudget = 2048;
        private readonly ConcurrentQueue<Work> _queue = new();
        private readonly HashSet<Subscription> _touched = new(ReferenceEqualityComparer.Instance);
        private readonly List<DateTimeOffset> _committed = [];
        private int _scheduled;

        public void Post(Work work)
        {
            _queue.Enqueue(work);
            if (Interlocked.Exchange(ref _scheduled, 1) == 0) ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }

        public void Execute()
        {
            while (true)
            {
                while (!_queue.IsEmpty) Round();
                Volatile.Write(ref _scheduled, 0);
                // Posted after the last look but before the flag was cleared: go on (unless another run took it).
                if (_queue.IsEmpty || Interlocked.Exchange(ref _scheduled, 1) != 0) return;
            }
        }

        private void Round()
        {
            var budget = 0;
            while (budget < RoundBudget && _queue.TryDequeue(out var work))
            {
                foreach (var s in work.Subscribers)
                {
                    foreach (var f in work.Frames) s.Offer(f, flush: false);
                    _touched.Add(s);
                }
                budget += work.Subscribers.Count * work.Frames.Length;
                foreach (var f in work.Frames)
                    if (f.Event is { } e) _committed.Add(e.CommittedAt);
            }
            foreach (var s in _touched) s.Flush(); // one flush per subscriber for the whole round
            _touched.Clear();
            var now = clock.GetUtcNow();
            foreach (var c in _committed) ChangeHub.DeliveryDelay.Record((now - c).TotalMilliseconds);
            _committed.Clear();
        }
    }
}
