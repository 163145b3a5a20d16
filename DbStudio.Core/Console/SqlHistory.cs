// What was run in each project's console and by the assistant, newest first, for the SQL tab to re-run.
// In memory per app instance, bounded; it is a convenience, not an audit log.
using System.Collections.Concurrent;

namespace DbStudio.Core.Console;

public enum SqlSource { Console, Assistant }

public sealed record SqlHistoryEntry(string Sql, SqlSource Source, DateTimeOffset At, int Statements, string? ErrorCode);

public sealed class SqlHistory(TimeProvider clock)
{
    public const int PerProject = 100;
    /// <summary>A project's history is dropped when nothing was added for this long (issue 17: nothing per idle project).</summary>
    public static readonly TimeSpan KeepFor = TimeSpan.FromDays(1);
    private readonly ConcurrentDictionary<string, LinkedList<SqlHistoryEntry>> _byProject = new();
    private long _nextSweep;

    public event Action<string>? Changed;

    public void Add(string projectId, string sql, SqlSource source, IReadOnlyList<StatementResult> results)
    {
        var list = _byProject.GetOrAdd(projectId, _ => new LinkedList<SqlHistoryEntry>());
        lock (list)
        {
            list.AddFirst(new SqlHistoryEntry(sql, source, clock.GetUtcNow(), results.Count, results.FirstOrDefault(r => r.Error is not null)?.Error?.Code));
            while (list.Count > PerProject) list.RemoveLast();
        }
        Sweep();
        Changed?.Invoke(projectId);
    }

    /// <summary>At most hourly: the histories of projects with nothing added for <see cref="KeepFor"/> go.</summary>
    private void Sweep()
    {
        var now = clock.GetUtcNow();
        var due = Volatile.Read(ref _nextSweep);
        if (now.UtcTicks < due || Interlocked.CompareExchange(ref _nextSweep, now.AddHours(1).UtcTicks, due) != due) return;
        foreach (var (project, list) in _byProject)
        {
            bool stale;
            lock (list) stale = list.First is null || now - list.First.Value.At > KeepFor;
            if (stale) _byProject.TryRemove(new KeyValuePair<string, LinkedList<SqlHistoryEntry>>(project, list));
        }
    }

    public IReadOnlyList<SqlHistoryEntry> For(string projectId)
    {
        if (!_byProject.TryGetValue(projectId, out var list)) return [];
        lock (list) return list.ToList();
    }

    public void Forget(string projectId) => _byProject.TryRemove(projectId, out _);
}
