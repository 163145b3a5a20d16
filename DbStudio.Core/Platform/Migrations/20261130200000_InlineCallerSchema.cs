using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace DbStudio.Core.Platform.Migrations
{
    /// <summary>
    /// The change log's row-security function, caller_schema(), becomes one PostgreSQL can inline. Every captured write
    /// checks it about six times (the stream row it locks and updates, the newest id it reads, the change it inserts),
    /// and as a SQL function with its own search_path it was planned anew on each call. Its body is now an SQL-standard
    /// one (RETURN …): parsed once, when it is made, with every name qualified, so no search_path a caller sets can
    /// change what it calls, and it needs no SET clause — which is what kept it from being inlined. Same answer for
    /// every role. No EF model change.
    /// </summary>
    [DbContext(typeof(PlatformDbContext))]
    [Migration("20261130200000_InlineCallerSchema")]
    public class InlineCallerSchema : Migration
    {
        /// <summary>The SQL as this migration ran it (frozen).</summary>
        internal const string Sql = """
            CREATE OR REPLACE FUNCTION dbstudio_realtime.caller_schema() RETURNS text LANGUAGE sql STABLE
                RETURN pg_catalog."substring"(CURRENT_USER::pg_catalog.text,
                                              '^(proj_[a-z0-9]+)_(?:owner|anon|user|user_admin)$'::pg_catalog.text);
            """;

        /// <summary>The definition it replaced (the ChangeLog migration's).</summary>
        internal const string DownSql = """
            CREATE OR REPLACE FUNCTION dbstudio_realtime.caller_schema() RETURNS text LANGUAGE sql STABLE
                SET search_path = pg_catalog, pg_temp
                AS $$ SELECT substring(current_user::text from '^(proj_[a-z0-9]+)_(?:owner|anon|user|user_admin)$') $$;
            """;

        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder) => migrationBuilder.Sql(Sql);

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder) => migrationBuilder.Sql(DownSql);
    }
}
