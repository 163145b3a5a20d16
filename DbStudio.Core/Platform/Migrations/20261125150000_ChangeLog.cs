using DbStudio.Core.Streams;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace DbStudio.Core.Platform.Migrations
{
    /// <summary>The live row stream's change log (DESIGN §6): schema dbstudio_realtime, see <see cref="ChangeCapture"/>.
    /// No EF model change: the log is read and written with plain SQL.</summary>
    [DbContext(typeof(PlatformDbContext))]
    [Migration("20261125150000_ChangeLog")]
    public class ChangeLog : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(ChangeCapture.SchemaSql);
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
