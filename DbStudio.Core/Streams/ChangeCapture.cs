// Change capture for the live row stream (DESIGN §6): a deferred constraint trigger on every project table writes each
// committed INSERT/UPDATE/DELETE to a retained change log and notifies listeners. The ids are per project, assigned at
// commit under the project's stream-row lock, so they are visible in the order they were given out: a reader that has
// seen id N has seen everything below it, which is what makes resuming with Last-Event-ID exact.
//
// Isolation comes from PostgreSQL: the trigger runs as whoever made the change (never with more rights), and row
// security on the log lets a role write only rows of its own project, derived from the role's name. NOTIFY carries
// nothing (any role may LISTEN). The trigger is made by the project's owner on the project's own login.
using System.Collections.Concurrent;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using DbStudio.Core.Sql;
using Npgsql;

namespace DbStudio.Core.Streams;

public sealed class ChangeCapture(Platform.ProjectServers servers, RestConnections connections, ChangeLog changeLog)
{
    public const string TriggerName = "dbstudio_capture";

    private readonly ConcurrentDictionary<(string Project, uint Oid), bool> _installed = new();

    /// <summary>Makes sure the table records its changes (cached; a dropped trigger is re-created on the next cold check).</summary>
    public async Task EnsureAsync(string projectId, uint tableOid, CancellationToken ct = default)
    {
        if (_installed.ContainsKey((projectId, tableOid))) return;
        await EnsureProjectAsync(projectId, ct);
    }

    /// <summary>Installs the trigger on every table of the project that lacks it (console, assistant, direct connection tables).</summary>
    public async Task EnsureProjectAsync(string projectId, CancellationToken ct = default)
    {
        var schema = ProjectNaming.Schema(projectId);
        var missing = new List<(uint Oid, string Name)>();
        // The catalog is read on the platform's login on the project's server (no project code runs); the trigger is made by the owner.
        await using (var cmd = (await servers.OfAsync(projectId, ct)).DataSource.CreateCommand("""
            SELECT c.oid, c.relname, EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = $2)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            """))
        {
            cmd.Parameters.Add(new() { Value = schema });
            cmd.Parameters.Add(new() { Value = TriggerName });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                var oid = r.GetFieldValue<uint>(0);
                if (r.GetBoolean(2)) _installed[(projectId, oid)] = true;
                else missing.Add((oid, r.GetString(1)));
            }
        }
        if (missing.Count == 0) return;
        await changeLog.EnsureStreamAsync(projectId, ct);
        var sql = string.Join("\n", missing.Select(m =>
            $"CREATE CONSTRAINT TRIGGER {TriggerName} AFTER INSERT OR UPDATE OR DELETE ON {SqlText.Qualified(schema, m.Name)} " +
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dbstudio_realtime.capture();"));
        try
        {
            await connections.AsOwnerAsync(projectId, async conn =>
            {
                await using var tx = await conn.BeginTransactionAsync(ct);
                await using (var cmd = new NpgsqlCommand(sql, conn, tx)) await cmd.ExecuteNonQueryAsync(ct);
                await tx.CommitAsync(ct);
                return true;
            }, ct);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DuplicateObject)
        {
            // Installed concurrently by another request or instance: the next check finds it.
            return;
        }
        foreach (var m in missing) _installed[(projectId, m.Oid)] = true;
    }

    /// <summary>Forgets what is known about a project (it was deleted).</summary>
    public void Forget(string projectId)
    {
        foreach (var key in _installed.Keys.Where(k => k.Project == projectId)) _installed.TryRemove(key, out _);
    }
}
