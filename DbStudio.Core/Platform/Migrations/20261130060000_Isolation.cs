using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace DbStudio.Core.Platform.Migrations
{
    /// <summary>
    /// Isolation (issue 11). The change log records the changed relation's OID, so a stream follows a table, not a name
    /// (a table dropped and made again under the same name never replays the old one's rows; partitions reach their
    /// parents' subscribers). Notifications carry no payload: any role may LISTEN on any channel, and a schema name in
    /// the payload told every tenant which projects were busy. Access settings remember the table they were made for.
    /// No EF model change: the log is plain SQL, and table_access."TableOid" is read and written with plain SQL.
    /// </summary>
    [DbContext(typeof(PlatformDbContext))]
    [Migration("20261130060000_Isolation")]
    public class Isolation : Migration
    {
        /// <summary>The SQL as this migration ran it (frozen).</summary>
        internal const string Sql = """
            -- Changes recorded without their table's OID cannot be told apart from a dropped table's of the same name,
            -- and their ids were handed out unsigned: they are not resumed from.
            DELETE FROM dbstudio_realtime.changes;
            ALTER TABLE dbstudio_realtime.changes ADD COLUMN table_oid oid NOT NULL;
            ALTER TABLE platform.table_access ADD COLUMN "TableOid" oid;

            CREATE OR REPLACE FUNCTION dbstudio_realtime.capture() RETURNS trigger LANGUAGE plpgsql
                SET search_path = pg_catalog, pg_temp AS $$
            DECLARE
                counter text := 'dbstudio_capture.' || TG_TABLE_SCHEMA;
                next_id bigint := nullif(current_setting(counter, true), '')::bigint + 1;
            BEGIN
                IF next_id IS NULL THEN
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
                INSERT INTO dbstudio_realtime.changes (schema_name, id, table_name, table_oid, op, record, old_record, committed_at)
                VALUES (TG_TABLE_SCHEMA, next_id, TG_TABLE_NAME, TG_RELID, lower(left(TG_OP, 1))::"char",
                        CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
                        CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
                        clock_timestamp());
                PERFORM pg_notify('dbstudio_changes', '');
                RETURN NULL;
            END $$;
            """;

        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder) => migrationBuilder.Sql(Sql);

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(CaptureInBulk.CaptureInBulkSql[CaptureInBulk.CaptureInBulkSql.IndexOf("CREATE OR REPLACE FUNCTION", StringComparison.Ordinal)..]);
            migrationBuilder.Sql("ALTER TABLE dbstudio_realtime.changes DROP COLUMN table_oid; ALTER TABLE platform.table_access DROP COLUMN \"TableOid\";");
        }
    }
}
