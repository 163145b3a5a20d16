using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace DbStudio.Core.Platform.Migrations
{
    /// <summary>
    /// Each captured change records its writer's transaction (the top-level one, even when written inside a savepoint):
    /// the stream nets a transaction's changes of one row to what committed (Streams/ChangeNetting), so no version a
    /// row had inside its transaction is ever shown. Changes logged before this have none and are not netted. No EF
    /// model change.
    /// </summary>
    [DbContext(typeof(PlatformDbContext))]
    [Migration("20261201000000_ChangeTransactions")]
    public class ChangeTransactions : Migration
    {
        /// <summary>The SQL as this migration ran it (frozen).</summary>
        internal const string Sql = """
            ALTER TABLE dbstudio_realtime.changes ADD COLUMN IF NOT EXISTS xact xid8;
            ALTER TABLE dbstudio_realtime.changes ALTER COLUMN xact SET DEFAULT pg_catalog.pg_current_xact_id();
            """;

        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder) => migrationBuilder.Sql(Sql);

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder) =>
            migrationBuilder.Sql("ALTER TABLE dbstudio_realtime.changes DROP COLUMN IF EXISTS xact;");
    }
}
