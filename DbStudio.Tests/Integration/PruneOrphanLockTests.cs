// From the review of session 13: on a server other than the platform's, the prune's orphan clean-up deletes the stream row of any project
// whose schema is not there. A tenant owns its schema (it can drop it) and may lock its own stream row (UPDATE(last_id)
// is granted to PUBLIC, RLS lets it see its own row): the orphan DELETE then waits on the tenant's lock, now for up to
// 600 s (CommandTimeout), then throws, every pass — and servers after this one in the pass are not pruned at all.
using DbStudio.Core.Projects;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace DbStudio.Tests.Integration;

public class PruneOrphanLockTests(TwoServers s) : IClassFixture<TwoServers>
{
    [Fact]
    public async Task A_tenant_cannot_make_the_prune_wait_on_its_own_lock()
    {
        var owner = await s.NewUserClientAsync();
        var p = await s.ProjectOnAsync(owner, "b");
        var schema = ProjectNaming.Schema(p.Id);
        await s.App.Services.GetRequiredService<DbStudio.Core.Streams.ChangeLog>().EnsureStreamAsync(p.Id, TestContext.Current.CancellationToken);
        Assert.Equal(1L, await TwoServers.ScalarAsync<long>(s.B, "SELECT count(*) FROM dbstudio_realtime.streams WHERE schema_name = $1", schema));

        await using var tenant = new NpgsqlConnection(ConnectionSharesTests.FromUrl(p.ConnectionUrl));
        await tenant.OpenAsync();
        async Task Run(string sql) { await using var c = new NpgsqlCommand(sql, tenant); await c.ExecuteNonQueryAsync(); }
        await using (var who = new NpgsqlCommand("SELECT current_user::text", tenant))
            if ((string)(await who.ExecuteScalarAsync())! != schema + "_owner") await Run($"SET ROLE {schema}_owner");
        await Run($"DROP SCHEMA {schema} CASCADE"); // its owner may (renaming needs CREATE on the database)
        await Run("BEGIN");
        await using (var lockIt = new NpgsqlCommand("SELECT count(*) FROM (SELECT 1 FROM dbstudio_realtime.streams FOR UPDATE) x", tenant))
            Assert.Equal(1L, (long)(await lockIt.ExecuteScalarAsync())!); // its own stream row, locked

        var prune = Task.Run(() => s.App.Services.GetRequiredService<DbStudio.Core.Streams.ChangeHub>().PruneAsync());
        var blockedOnTenant = false;
        for (var deadline = DateTime.UtcNow.AddSeconds(60); !prune.IsCompleted && DateTime.UtcNow < deadline; await Task.Delay(100))
        {
            blockedOnTenant = await TwoServers.ScalarAsync<long>(s.B, """
                SELECT count(*) FROM pg_stat_activity a
                WHERE a.wait_event_type = 'Lock' AND a.query LIKE '%WITH gone AS%DELETE FROM dbstudio_realtime.streams%'
                  AND $1::int = ANY (pg_blocking_pids(a.pid))
                """, tenant.ProcessID) > 0;
            if (blockedOnTenant) break;
        }
        await Run("ROLLBACK");
        try { await prune; } catch { }
        Assert.False(blockedOnTenant, "the prune's orphan clean-up waited on the tenant's lock on its own stream row (up to 600 s, then fails the pass)");
    }
}
