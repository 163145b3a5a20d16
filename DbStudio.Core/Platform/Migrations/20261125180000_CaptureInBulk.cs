using DbStudio.Core.Streams;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace DbStudio.Core.Platform.Migrations
{
    /// <summary>Change capture in O(1) per row (see <see cref="ChangeCapture.CaptureInBulkSql"/>). No EF model change.</summary>
    [DbContext(typeof(PlatformDbContext))]
    [Migration("20261125180000_CaptureInBulk")]
    public class CaptureInBulk : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder) => migrationBuilder.Sql(ChangeCapture.CaptureInBulkSql);

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP POLICY own_change_ids ON dbstudio_realtime.changes; REVOKE SELECT ON dbstudio_realtime.changes FROM PUBLIC;");
            migrationBuilder.Sql(ChangeCapture.SchemaSql[ChangeCapture.SchemaSql.IndexOf("CREATE FUNCTION dbstudio_realtime.capture()", StringComparison.Ordinal)..]
                .Replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"));
        }
    }
}
