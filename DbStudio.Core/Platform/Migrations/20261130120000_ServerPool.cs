using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace DbStudio.Core.Platform.Migrations
{
    /// <summary>
    /// Several PostgreSQL servers (issue 17): each project's server, by its name in DbStudio:Servers. Every project made
    /// before lives on the platform database's server, "main" (the column's default, so an older instance's inserts
    /// still land there).
    /// </summary>
    [DbContext(typeof(PlatformDbContext))]
    [Migration("20261130120000_ServerPool")]
    public class ServerPool : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder) =>
            migrationBuilder.AddColumn<string>(name: "Server", schema: "platform", table: "projects",
                type: "character varying(63)", maxLength: 63, nullable: false, defaultValue: ServersOptions.Main);

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder) =>
            migrationBuilder.DropColumn(name: "Server", schema: "platform", table: "projects");
    }
}
