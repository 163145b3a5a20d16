// REST requests per project, per minute and auth level, for the project page's chart. In memory, last hour.
using System.Collections.Concurrent;
using DbStudio.Core.Auth;

namespace DbStudio.Core.Rest;

public enum RequestLevel { Anon, User, Admin, Refused }

public sealed class RestMetrics(TimeProvider clock)
{
    public const int Minutes = 60;
    private sealed class Window
    {
        public readonly long[,] Counts = new long[Minutes, 4];
        public readonly long[] MinuteOf = new long[Minutes];
        public long Newest;
    }

    private readonly ConcurrentDictionary<string, Window> _projects = new();
    private long _nextSweep;

    public void Record(string projectId, RequestLevel level)
    {
        var minute = clock.GetUtcNow().ToUnixTimeSeconds() / 60;
        var w = _projects.GetOrAdd(projectId, _ => new Window());
        var slot = (int)(minute % Minutes);
        lock (w)
        {
            if (w.MinuteOf[slot] != minute)
            {
                w.MinuteOf[slot] = minute;
                for (var l = 0; l < 4; l++) w.Counts[slot, l] = 0;
            }
            w.Counts[slot, (int)level]++;
            w.Newest = minute;
        }
        // Every ten minutes, the windows of projects without a request in the last hour go (issue 17: nothing per idle project).
        var due = Volatile.Read(ref _nextSweep);
        if (minute < due || Interlocked.CompareExchange(ref _nextSweep, minute + 10, due) != due) return;
        foreach (var (project, window) in _projects)
        {
            bool stale;
            lock (window) stale = window.Newest <= minute - Minutes;
            if (stale) _projects.TryRemove(new KeyValuePair<string, Window>(project, window));
        }
    }

    public static RequestLevel LevelOf(RestCaller? caller) => caller?.Kind switch
    {
        CallerKind.Anon => RequestLevel.Anon,
        CallerKind.User => RequestLevel.User,
        CallerKind.Admin => RequestLevel.Admin,
        _ => RequestLevel.Refused,
    };

    /// <summary>Requests in each of the last <paramref name="minutes"/> minutes (oldest first), per level.</summary>
    public (DateTimeOffset[] Minutes, long[][] PerLevel) Recent(string projectId, int minutes = 30)
    {
        minutes = Math.Clamp(minutes, 1, Minutes);
        var now = clock.GetUtcNow().ToUnixTimeSeconds() / 60;
        var labels = new DateTimeOffset[minutes];
        var perLevel = Enumerable.Range(0, 4).Select(_ => new long[minutes]).ToArray();
        _projects.TryGetValue(projectId, out var w);
        for (var i = 0; i < minutes; i++)
        {
            var minute = now - (minutes - 1 - i);
            labels[i] = DateTimeOffset.FromUnixTimeSeconds(minute * 60);
            if (w is null) continue;
            var slot = (int)(minute % Minutes);
            lock (w)
                if (w.MinuteOf[slot] == minute)
                    for (var l = 0; l < 4; l++) perLevel[l][i] = w.Counts[slot, l];
        }
        return (labels, perLevel);
    }
}
