// Values kept per project while it is in use (catalog snapshots, request charts), dropped once nobody asked for one
// for a while: thousands of projects that were busy once cost nothing once they are idle (issue 17). The sweep runs
// from the callers' own calls, at most every quarter of the idle time, over the entries kept — the projects used
// lately, never all projects. Time is the injected TimeProvider's.
using System.Collections.Concurrent;

namespace DbStudio.Core.Projects;

public sealed class IdleMap<T>(TimeProvider clock, TimeSpan idleAfter)
{
    private sealed class Entry(T value, long used)
    {
        public readonly T Value = value;
        public long Used = used;
    }

    private readonly ConcurrentDictionary<string, Entry> _map = new();
    private readonly long _sweepEvery = Math.Max(1, (long)(idleAfter.TotalSeconds / 4 * clock.TimestampFrequency));
    private long _nextSweep;

    public int Count => _map.Count;

    public T GetOrAdd(string key, Func<string, T> create)
    {
        var now = clock.GetTimestamp();
        var entry = _map.GetOrAdd(key, k => new Entry(create(k), now));
        Volatile.Write(ref entry.Used, now);
        Sweep(now);
        return entry.Value;
    }

    public bool TryGetValue(string key, out T value)
    {
        if (_map.TryGetValue(key, out var entry))
        {
            Volatile.Write(ref entry.Used, clock.GetTimestamp());
            value = entry.Value;
            return true;
        }
        value = default!;
        return false;
    }

    public void Set(string key, T value)
    {
        var now = clock.GetTimestamp();
        _map[key] = new Entry(value, now);
        Sweep(now);
    }

    public bool Remove(string key) => _map.TryRemove(key, out _);

    private void Sweep(long now)
    {
        var due = Volatile.Read(ref _nextSweep);
        if (now < due || Interlocked.CompareExchange(ref _nextSweep, now + _sweepEvery, due) != due) return;
        foreach (var (key, entry) in _map)
            if (clock.GetElapsedTime(Volatile.Read(ref entry.Used), now) > idleAfter)
                _map.TryRemove(new KeyValuePair<string, Entry>(key, entry));
    }
}
