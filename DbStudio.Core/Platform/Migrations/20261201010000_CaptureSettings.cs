using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace DbStudio.Core.Platform.Migrations
{
    /// <summary>
    /// The capture trigger writes row images under fixed output settings. to_jsonb() turns a timestamptz, an interval, a
    /// float, a bytea, money or a range of dates into JSON text as the writer's session has it (TimeZone, IntervalStyle,
    /// extra_float_digits, bytea_output, lc_monetary, DateStyle); a writer that changed one between two statements of a transaction gave one row two
    /// texts for one value, and the stream — which follows a row from image to image to net a transaction's changes
    /// (Streams/ChangeNetting) — lost it and showed the version from inside the transaction. No EF model change.
    /// </summary>
    [DbContext(typeof(PlatformDbContext))]
    [Migration("20261201010000_CaptureSettings")]
    public class CaptureSettings : Migration
    {
        /// <summary>The SQL as this migration ran it (frozen).</summary>
        internal const string Sql = """
            ALTER FUNCTION dbstudio_realtime.capture() SET "TimeZone" TO 'UTC';
            ALTER FUNCTION dbstudio_realtime.capture() SET "IntervalStyle" TO 'postgres';
            ALTER FUNCTION dbstudio_realtime.capture() SET extra_float_digits TO 1;
            ALTER FUNCTION dbstudio_realtime.capture() SET bytea_output TO 'hex';
            ALTER FUNCTION dbstudio_realtime.capture() SET lc_monetary TO 'C';
            ALTER FUNCTION dbstudio_realtime.capture() SET "DateStyle" TO 'ISO, MDY';
            """;

        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder) => migrationBuilder.Sql(Sql);

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder) => migrationBuilder.Sql("""
            ALTER FUNCTION dbstudio_realtime.capture() RESET "TimeZone";
            ALTER FUNCTION dbstudio_realtime.capture() RESET "IntervalStyle";
            ALTER FUNCTION dbstudio_realtime.capture() RESET extra_float_digits;
            ALTER FUNCTION dbstudio_realtime.capture() RESET bytea_output;
            ALTER FUNCTION dbstudio_realtime.capture() RESET lc_monetary;
            ALTER FUNCTION dbstudio_realtime.capture() RESET "DateStyle";
            """);
    }
}
