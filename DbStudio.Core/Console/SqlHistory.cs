// What was run in each project's console and by the assistant, newest first, for the SQL tab to re-run.
// In memory per app instance, bounded; it is a convenience, not an audit log.
using System.Collections.Concurrent;

namespace DbStudio.Core.Console;

public enum SqlSource { Console, Assistant }

public sealed record SqlHistoryEntry(string Sql, SqlSource Source, DateTimeOffset At, int Statements, string? ErrorCode);

public sealed class SqlHistory(TimeProvider clock)
{
    public const int PerProject = 100;
    private readonly ConcurrentDictionary<string, LinkedList<SqlHistoryEntry>> _byProject = new();

    public event Action<string>? Changed;

    public void Add(string projectId, string sql, SqlSource source, IReadOnlyList<StatementResult> results)
    {
        var list = _byProject.GetOrAdd(projectId, _ => new LinkedList<SqlHistoryEntry>());
        lock (list)
        {
            list.AddFirst(new SqlHistoryEntry(sql, source, clock.GetUtcNow(), results.Count, results.FirstOrDefault(r => r.Error is not null)?.Error?.Code));
            while (list.Count > PerProject) list.RemoveLast();
        }
        Changed?.Invoke(projectId);
    }

    public IReadOnlyList<SqlHistoryEntry> For(string projectId)
    {
        if (!_byProject.TryGetValue(projectId, out var list)) return [];
        lock (list) return list.ToList();
    }

    public void Forget(string projectId) => _byProject.TryRemove(projectId, out _);
}
