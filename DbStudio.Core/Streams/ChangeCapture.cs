// Change capture for the live row stream (DESIGN §6): a deferred constraint trigger on every project table writes each
// committed INSERT/UPDATE/DELETE to a retained change log and notifies listeners. The ids are per project, assigned at
// commit under the project's stream-row lock, so they are visible in the order they were given out: a reader that has
// seen id N has seen everything below it, which is what makes resuming with Last-Event-ID exact.
//
// Isolation comes from PostgreSQL: the trigger runs as whoever made the change (never with more rights), and row
// security on the log lets a role write only rows of its own project, derived from the role's name. NOTIFY carries the
// project's schema name only (identical payloads in one transaction collapse into one notification).
using System.Collections.Concurrent;
using DbStudio.Core.Projects;
using DbStudio.Core.Sql;
using Npgsql;

namespace DbStudio.Core.Streams;

public sealed class ChangeCapture(NpgsqlDataSource platform)
{
    public const string Channel = "dbstudio_changes";
    public const string TriggerName = "dbstudio_capture";

    /// <summary>Created by the ChangeLog migration.</summary>
    public const string SchemaSql = """
        CREATE SCHEMA dbstudio_realtime;
        GRANT USAGE ON SCHEMA dbstudio_realtime TO PUBLIC;

        -- The project schema of the calling role (proj_{id}_owner|anon|user|user_admin), else NULL.
        CREATE FUNCTION dbstudio_realtime.caller_schema() RETURNS text LANGUAGE sql STABLE
            SET search_path = pg_catalog, pg_temp
            AS $$ SELECT substring(current_user::text from '^(proj_[a-z0-9]+)_(?:owner|anon|user|user_admin)$') $$;

        CREATE TABLE dbstudio_realtime.streams (
            schema_name text PRIMARY KEY,
            last_id bigint NOT NULL DEFAULT 0,        -- the newest change id given out
            pruned_through bigint NOT NULL DEFAULT 0  -- ids up to here have left the retention window
        );
        CREATE TABLE dbstudio_realtime.changes (
            schema_name text NOT NULL,
            id bigint NOT NULL,
            table_name text NOT NULL,
            op "char" NOT NULL,                        -- i, u, d
            record jsonb,
            old_record jsonb,
            committed_at timestamptz NOT NULL,
            PRIMARY KEY (schema_name, id)
        );
        CREATE INDEX changes_committed_at ON dbstudio_realtime.changes (committed_at);

        ALTER TABLE dbstudio_realtime.streams ENABLE ROW LEVEL SECURITY;
        ALTER TABLE dbstudio_realtime.changes ENABLE ROW LEVEL SECURITY;
        GRANT SELECT (schema_name, last_id), UPDATE (last_id) ON dbstudio_realtime.streams TO PUBLIC;
        CREATE POLICY own_stream ON dbstudio_realtime.streams TO PUBLIC
            USING (schema_name = dbstudio_realtime.caller_schema());
        GRANT INSERT ON dbstudio_realtime.changes TO PUBLIC;
        CREATE POLICY own_changes ON dbstudio_realtime.changes FOR INSERT TO PUBLIC
            WITH CHECK (schema_name = dbstudio_realtime.caller_schema());

        -- Fires at commit (deferred), as the role that made the change.
        CREATE FUNCTION dbstudio_realtime.capture() RETURNS trigger LANGUAGE plpgsql
            SET search_path = pg_catalog, pg_temp AS $$
        DECLARE
            next_id bigint;
        BEGIN
            UPDATE dbstudio_realtime.streams SET last_id = last_id + 1 WHERE schema_name = TG_TABLE_SCHEMA
                RETURNING last_id INTO next_id;
            IF next_id IS NULL THEN
                RETURN NULL; -- a role of another project writing here (granted by the owner): not recorded
            END IF;
            INSERT INTO dbstudio_realtime.changes (schema_name, id, table_name, op, record, old_record, committed_at)
            VALUES (TG_TABLE_SCHEMA, next_id, TG_TABLE_NAME, lower(left(TG_OP, 1))::"char",
                    CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
                    CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
                    clock_timestamp());
            PERFORM pg_notify('dbstudio_changes', TG_TABLE_SCHEMA);
            RETURN NULL;
        END $$;
        """;

    private readonly ConcurrentDictionary<(string Project, uint Oid), bool> _installed = new();

    /// <summary>The SQL run at provisioning and deprovisioning (inside their transactions).</summary>
    public static string CreateStreamSql(string projectId) =>
        $"INSERT INTO dbstudio_realtime.streams (schema_name) VALUES ({SqlText.Literal(ProjectNaming.Schema(projectId))}) ON CONFLICT DO NOTHING;";

    public static string DropStreamSql(string projectId)
    {
        var schema = SqlText.Literal(ProjectNaming.Schema(projectId));
        return $"DELETE FROM dbstudio_realtime.changes WHERE schema_name = {schema}; DELETE FROM dbstudio_realtime.streams WHERE schema_name = {schema};";
    }

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
        await using var conn = await platform.OpenConnectionAsync(ct);
        await using (var cmd = new NpgsqlCommand("""
            SELECT c.oid, c.relname, EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = $2)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            """, conn))
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
        await using var tx = await conn.BeginTransactionAsync(ct);
        // The table owner creates the trigger (the platform role is a member of it).
        var sql = $"SET LOCAL ROLE {SqlText.Ident(ProjectNaming.OwnerRole(projectId))};\n" +
                  string.Join("\n", missing.Select(m =>
                      $"CREATE CONSTRAINT TRIGGER {TriggerName} AFTER INSERT OR UPDATE OR DELETE ON {SqlText.Qualified(schema, m.Name)} " +
                      "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dbstudio_realtime.capture();")) +
                  "\nRESET ROLE;\n" + CreateStreamSql(projectId);
        try
        {
            await using (var cmd = new NpgsqlCommand(sql, conn, tx)) await cmd.ExecuteNonQueryAsync(ct);
            await tx.CommitAsync(ct);
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
