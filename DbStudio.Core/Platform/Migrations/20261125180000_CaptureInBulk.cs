using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace DbStudio.Core.Platform.Migrations
{
    /// <summary>Change capture in O(1) per row (see CaptureInBulkSql). No EF model change.</summary>
    [DbContext(typeof(PlatformDbContext))]
    [Migration("20261125180000_CaptureInBulk")]
    public class CaptureInBulk : Migration
    {
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
        internal const string CaptureInBulkSql = """
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

        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder) => migrationBuilder.Sql(CaptureInBulkSql);

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP POLICY own_change_ids ON dbstudio_realtime.changes; REVOKE SELECT ON dbstudio_realtime.changes FROM PUBLIC;");
            migrationBuilder.Sql(ChangeLog.SchemaSql[ChangeLog.SchemaSql.IndexOf("CREATE FUNCTION dbstudio_realtime.capture()", StringComparison.Ordinal)..]
                .Replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"));
        }
    }
}
