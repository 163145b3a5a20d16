// README's first command: with no connection string the app starts its own PostgreSQL, runs on it as a
// non-superuser platform role, and stops it on shutdown.
using System.Net;
using DbStudio.Tests.Infrastructure;
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
            await using (var factory = new AppFactory("", new Dictionary<string, string?> { ["Embedded:DataDir"] = root }))
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

    private static string ReadPlatformPassword(string root) =>
        System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(root, "credentials.json"))).RootElement.GetProperty("PlatformPassword").GetString()!;
}
