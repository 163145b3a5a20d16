// README's first command: with no connection string the app starts its own PostgreSQL, runs on it as a
// non-superuser platform role, and stops it on shutdown. A first start that goes well logs nothing at error level.
using System.Net;
using DbStudio.Tests.Endpoints;
using DbStudio.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DbStudio.Tests.Integration;

public class EmbeddedDefaultTests
{
    [Fact]
    public async Task With_no_connection_string_the_app_starts_and_stops_its_own_postgres()
    {
        var root = Path.Combine(Path.GetTempPath(), $"dbstudio-embedded-{Guid.NewGuid():N}");
        try
        {
            string platformCs;
            int port;
            var logs = new CapturingLoggerProvider();
            await using (var factory = new LoggedFactory(logs, new Dictionary<string, string?> { ["Embedded:DataDir"] = root }))
            {
                var client = factory.CreateClient();
                Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);
                var cluster = (DbStudio.Core.Postgres.LocalCluster)factory.Services.GetService(typeof(DbStudio.Core.Postgres.LocalCluster))!;
                port = cluster.Port;
                platformCs = ((NpgsqlDataSource)factory.Services.GetService(typeof(NpgsqlDataSource))!).ConnectionString;
                Assert.True(File.Exists(Path.Combine(root, "pgdata", "PG_VERSION")));
                await using var conn = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(platformCs) { Password = ReadPlatformPassword(root), Pooling = false }.ConnectionString);
                await conn.OpenAsync();
                await using var cmd = new NpgsqlCommand("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", conn);
                Assert.False((bool)(await cmd.ExecuteScalarAsync())!);
                // A fresh cluster has no migrations history yet: that is not an error, and no error is logged for it.
                var errors = logs.Lines.Where(l => l.StartsWith("Error ") || l.StartsWith("Critical ")).ToList();
                Assert.True(errors.Count == 0, string.Join("\n", errors));
                Assert.Contains(logs.Lines, l => l.Contains("Microsoft.Hosting.Lifetime") || l.Contains("Microsoft.EntityFrameworkCore"));
            }
            // Disposed = shut down: the cluster was stopped.
            await using var after = new NpgsqlConnection($"Host=127.0.0.1;Port={port};Username=x;Password=y;Timeout=2;Pooling=false");
            await Assert.ThrowsAnyAsync<Exception>(() => after.OpenAsync());
        }
        finally
        {
            try { Directory.Delete(root, true); } catch (Exception) { /* best effort */ }
        }
    }

    [Fact]
    public void Development_console_lines_separate_the_timestamp_from_the_level()
    {
        // `dotnet run` (Development) writes the simple console format: "05:36:32.286 info: …", not "…Zinfo: …".
        var dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "DbStudio.sln"))) dir = Path.GetDirectoryName(dir)!;
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "DbStudio.Web", "appsettings.Development.json")));
        var console = json.RootElement.GetProperty("Logging").GetProperty("Console");
        Assert.Equal("simple", console.GetProperty("FormatterName").GetString());
        var format = console.GetProperty("FormatterOptions").GetProperty("TimestampFormat").GetString()!;
        Assert.True(char.IsWhiteSpace(format[^1]), $"'{format}' runs into the level");
    }

    private sealed class LoggedFactory(CapturingLoggerProvider logs, IReadOnlyDictionary<string, string?> settings) : AppFactory("", settings)
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            base.ConfigureWebHost(builder);
            builder.ConfigureLogging(l => l.AddProvider(logs));
        }
    }

    private static string ReadPlatformPassword(string root) =>
        System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(root, "credentials.json"))).RootElement.GetProperty("PlatformPassword").GetString()!;
}
