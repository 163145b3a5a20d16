using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace DbStudio.Core.Platform.Migrations
{
    /// <summary>
    /// Several PostgreSQL servers (issue 17): each project's server, by its name in DbStudio:Servers. Every project made
    /// before lives on the platform database's server, "main" (the column's default, so an older instance's inserts
    /// still land there). A project being moved names its new server in "MovingTo". A moved table has another OID on
    /// its new server: table_moves keeps the old one, so stream ids given out before the move still resume
    /// (plain SQL, no EF model).
    /// </summary>
    [DbContext(typeof(PlatformDbContext))]
    [Migration("20261130120000_ServerPool")]
    public class ServerPool : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(name: "Server", schema: "platform", table: "projects",
                type: "character varying(63)", maxLength: 63, nullable: false, defaultValue: ServersOptions.Main);
            migrationBuilder.AddColumn<string>(name: "MovingTo", schema: "platform", table: "projects",
                type: "character varying(63)", maxLength: 63, nullable: true);
            migrationBuilder.Sql(TableMovesSql);
        }

        /// <summary>The SQL as this migration ran it (frozen).</summary>
        internal const string TableMovesSql = """
            CREATE TABLE platform.table_moves (
                project_id varchar(32) NOT NULL REFERENCES platform.projects ("Id") ON DELETE CASCADE,
                old_oid oid NOT NULL,
                new_oid oid NOT NULL,
                moved_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (project_id, new_oid, old_oid)
            );
            """;

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP TABLE platform.table_moves;");
            migrationBuilder.DropColumn(name: "MovingTo", schema: "platform", table: "projects");
            migrationBuilder.DropColumn(name: "Server", schema: "platform", table: "projects");
        }
    }
}
