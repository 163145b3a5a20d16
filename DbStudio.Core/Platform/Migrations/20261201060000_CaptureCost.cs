using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace DbStudio.Core.Platform.Migrations
{
    /// <summary>
    /// What a captured write costs no longer grows. Two causes, each making every write of a project slower the more it
    /// had written:
    /// <list type="bullet">
    /// <item>The trigger found the newest id with `schema_name = TG_TABLE_SCHEMA`, a name against a text column: no index
    /// matched it, so each transaction's first change read every change of its project in the log (15,000 rows, 381
    /// pages, 7.9 ms after 15,000 writes; the log keeps a day). It compares text now, and reads one index entry.</item>
    /// <item>Each captured transaction rewrote its project's row of dbstudio_realtime.streams. A snapshot any role keeps
    /// open (any owner can, over its Connection URL) keeps PostgreSQL from removing the old versions anywhere in the
    /// database, and every later write looked the row up through all of them. The row is now only locked (to give ids
    /// out in commit order), never rewritten: the next id is worked out as before, past the newest change and past what
    /// pruning cut, and last_id — which marked only each transaction's first id anyway — stays where it was.</item>
    /// </list>
    /// A writer in REPEATABLE READ or SERIALIZABLE works its id out in its transaction's snapshot: when that misses a
    /// change committed since, the id was given out already and the key refuses it, which is reported as the
    /// serialization failure it is (40001, as the rewritten row's lock gave before). The output settings of
    /// CaptureSettings are kept. No EF model change.
    /// </summary>
    [DbContext(typeof(PlatformDbContext))]
    [Migration("20261201060000_CaptureCost")]
    public class CaptureCost : Migration
    {
        /// <summary>The SQL as this migration ran it (frozen).</summary>
        internal const string Sql = """
            CREATE OR REPLACE FUNCTION dbstudio_realtime.capture() RETURNS trigger LANGUAGE plpgsql
                SET search_path = pg_catalog, pg_temp
                SET "TimeZone" TO 'UTC' SET "IntervalStyle" TO 'postgres' SET extra_float_digits TO 1
                SET bytea_output TO 'hex' SET lc_monetary TO 'C' SET "DateStyle" TO 'ISO, MDY' AS $$
            DECLARE
                -- TG_TABLE_SCHEMA is a name: compared with the text columns as it is, it matched no index, and the newest
                -- id was found by reading every change the project had in the log (its whole retained log, at every write).
                own text := TG_TABLE_SCHEMA;
                counter text := 'dbstudio_capture.' || own;
                next_id bigint := nullif(current_setting(counter, true), '')::bigint + 1;
                fresh boolean := next_id IS NULL;
            BEGIN
                IF fresh THEN
                    -- Held to the end of the transaction: ids are given out in the order their transactions commit.
                    PERFORM 1 FROM dbstudio_realtime.streams WHERE schema_name = own FOR UPDATE;
                    IF NOT FOUND THEN
                        RETURN NULL; -- a role of another project writing here (granted by the owner): not recorded
                    END IF;
                    SELECT greatest(s.last_id, s.pruned_through,
                                    coalesce((SELECT max(c.id) FROM dbstudio_realtime.changes c WHERE c.schema_name = own), 0)) + 1
                      INTO next_id FROM dbstudio_realtime.streams s WHERE s.schema_name = own;
                END IF;
                PERFORM set_config(counter, next_id::text, true);
                IF fresh AND current_setting('transaction_isolation') <> 'read committed' THEN
                    BEGIN
                        INSERT INTO dbstudio_realtime.changes (schema_name, id, table_name, table_oid, op, record, old_record, committed_at)
                        VALUES (own, next_id, TG_TABLE_NAME, TG_RELID, lower(left(TG_OP, 1))::"char",
                                CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
                                CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
                                clock_timestamp());
                    EXCEPTION WHEN unique_violation THEN
                        RAISE EXCEPTION 'could not serialize access due to a concurrent change of this project''s data'
                            USING ERRCODE = 'serialization_failure', HINT = 'Retry the transaction.';
                    END;
                ELSE
                    INSERT INTO dbstudio_realtime.changes (schema_name, id, table_name, table_oid, op, record, old_record, committed_at)
                    VALUES (own, next_id, TG_TABLE_NAME, TG_RELID, lower(left(TG_OP, 1))::"char",
                            CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
                            CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
                            clock_timestamp());
                END IF;
                PERFORM pg_notify('dbstudio_changes', '');
                RETURN NULL;
            END $$;
            """;

        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder) => migrationBuilder.Sql(Sql);

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            var isolation = Isolation.Sql;
            migrationBuilder.Sql(isolation[isolation.IndexOf("CREATE OR REPLACE FUNCTION", StringComparison.Ordinal)..]);
            migrationBuilder.Sql(CaptureSettings.Sql);
        }
    }
}
