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

    /// <summary>
    /// Created by the CaptureInBulk migration (replaces the first capture()): one lock and one update of the project's
    /// stream row per transaction instead of per row — the per-row update made a bulk insert quadratic (8,000 rows took
    /// a second, 24,000 ran past the console's limit), since every update of one row in one transaction leaves a version
    /// the next must step over. The first change of a transaction locks the row (which serialises the project's
    /// committing writers, so ids still become visible in order), takes the next id after the newest one in the log
    /// (or after last_id/pruned_through when the log was pruned empty), and marks the row; the rest count on in a
    /// transaction-local setting. A REPEATABLE READ writer that raced another still fails with a serialization error
    /// on the row, as before.
    /// </summary>
    public const string CaptureInBulkSql = """
        GRANT SELECT (schema_name, last_id, pruned_through) ON dbstudio_realtime.streams TO PUBLIC;
        GRANT SELECT (schema_name, id) ON dbstudio_realtime.changes TO PUBLIC;
        CREATE POLICY own_change_ids ON dbstudio_realtime.changes FOR SELECT TO PUBLIC
            USING (schema_name = dbstudio_realtime.caller_schema());

        CREATE OR REPLACE FUNCTION dbstudio_realtime.capture() RETURNS trigger LANGUAGE plpgsql
            SET search_path = pg_catalog, pg_temp AS $$
        DECLARE
            counter text := 'dbstudio_capture.' || TG_TABLE_SCHEMA;
            next_id bigint := nullif(current_setting(counter, true), '')::bigint + 1;
        BEGIN
            IF next_id IS NULL THEN
                -- The transaction's first change here: lock the stream, then (a new snapshot, after the lock) read
                -- the newest id; the update marks the row as written by this transaction.
                PERFORM 1 FROM dbstudio_realtime.streams WHERE schema_name = TG_TABLE_SCHEMA FOR UPDATE;
                IF NOT FOUND THEN
                    RETURN NULL; -- a role of another project writing here (granted by the owner): not recorded
                END IF;
                SELECT greatest(s.last_id, s.pruned_through,
                                coalesce((SELECT max(c.id) FROM dbstudio_realtime.changes c WHERE c.schema_name = TG_TABLE_SCHEMA), 0)) + 1
                  INTO next_id FROM dbstudio_realtime.streams s WHERE s.schema_name = TG_TABLE_SCHEMA;
                UPDATE dbstudio_realtime.streams SET last_id = next_id WHERE schema_name = TG_TABLE_SCHEMA;
            END IF;
            PERFORM set_config(counter, next_id::text, true);
            INSERT INTO dbstudio_realtime.changes (schema_name, id, table_name, op, record, old_record, committed_at)
            VALUES (TG_TABLE_SCHEMA, next_id, TG_TABLE_NAME, lower(left(TG_OP, 1))::"char",
                    CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
                    CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
                    clock_timestamp());
            PERFORM pg_notify('dbstudio_changes', TG_TABLE_SCHEMA);
            RETURN NULL;
        END $$;
        """;

    /// <summary>The newest change id of a stream: last_id marks only each transaction's first (CaptureInBulkSql).</summary>
    public const string LastIdSql =
        "greatest(s.last_id, s.pruned_through, coalesce((SELECT max(c.id) FROM dbstudio_realtime.changes c WHERE c.schema_name = s.schema_name), 0))";

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
