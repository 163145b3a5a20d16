using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace DbStudio.Core.Platform.Migrations
{
    /// <summary>The live row stream's change log (DESIGN §6): schema dbstudio_realtime, see Streams/ChangeLog.cs.
    /// No EF model change: the log is read and written with plain SQL.</summary>
    [DbContext(typeof(PlatformDbContext))]
    [Migration("20261125150000_ChangeLog")]
    public class ChangeLog : Migration
    {
        /// <summary>The SQL as this migration ran it (frozen: later changes come in later migrations).</summary>
            internal const string SchemaSql = """
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

        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(SchemaSql);
            // Projects created before the change log existed get their stream row.
            migrationBuilder.Sql("INSERT INTO dbstudio_realtime.streams (schema_name) SELECT 'proj_' || \"Id\" FROM platform.projects ON CONFLICT DO NOTHING;");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP SCHEMA dbstudio_realtime CASCADE;");
        }
    }
}
