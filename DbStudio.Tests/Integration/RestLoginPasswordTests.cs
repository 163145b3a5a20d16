// The REST logins' password when instances disagree (a move made the logins anew, another instance renewed it): a
// login that refuses the password an instance holds makes it take the kept one if that changed, and renew only when
// the kept one is the one refused — so instances failing at the same moment end with one password, not taking turns
// invalidating each other's (which once answered a client 403 "password authentication failed" right after a move).
using System.Net;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using Npgsql;

namespace DbStudio.Tests.Integration;

public class RestLoginPasswordTests(TestApp app)
{
    private async Task<bool> LogsInAsync(string projectId, string password)
    {
        var cs = new NpgsqlConnectionStringBuilder(app.Db.SuperuserConnectionString)
        {
            Username = ProjectLogins.LoginRole(projectId, RestRole.Anon), Password = password, Pooling = false,
        };
        await using var conn = new NpgsqlConnection(cs.ConnectionString);
        try
        {
            await conn.OpenAsync();
            return true;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InvalidPassword) { return false; }
    }

    [Fact]
    public async Task A_refused_password_is_renewed_once_however_many_instances_find_it_refused()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        var logins = app.Service<ProjectLogins>();
        var first = await logins.EnsureAsync(p.Id, renew: false, CancellationToken.None);
        Assert.True(await LogsInAsync(p.Id, first));

        // One instance finds `first` refused and renews; another that found the same refused takes the new one as it is.
        var renewed = await logins.EnsureAsync(p.Id, renew: true, CancellationToken.None, failedPassword: first);
        Assert.NotEqual(first, renewed);
        Assert.Equal(renewed, await logins.EnsureAsync(p.Id, renew: true, CancellationToken.None, failedPassword: first));
        Assert.True(await LogsInAsync(p.Id, renewed));
        Assert.False(await LogsInAsync(p.Id, first));

        // Eight at once finding `renewed` refused: one new password for all, and it logs in.
        var all = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ =>
            Task.Run(() => logins.EnsureAsync(p.Id, renew: true, CancellationToken.None, failedPassword: renewed))));
        Assert.Single(all.Distinct());
        Assert.NotEqual(renewed, all[0]);
        Assert.True(await LogsInAsync(p.Id, all[0]));
    }

    [Fact]
    public async Task Requests_go_on_when_the_login_password_changes_behind_the_pools_back()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        var r = await TestApp.SqlAsync(owner, p.Id, "create table t (id int primary key); insert into t values (1)");
        Assert.All(r, x => Assert.False(x.TryGetProperty("error", out var e), e.ToString()));
        using var http = app.Factory.CreateClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", p.ApiKey);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"/db/{p.Id}/rest/t")).StatusCode);

        // Another instance renews the password (its login refused the one it held) while this instance's pool has a
        // connection of the project in use — so the pool keeps the old connection string and opens the next one with it.
        var rest = app.Service<RestConnections>();
        var held = await rest.RentForRequestAsync(p.Id, RestRole.Owner, CancellationToken.None);
        var logins = app.Service<ProjectLogins>();
        var kept = await logins.EnsureAsync(p.Id, renew: false, CancellationToken.None);
        var renewed = await logins.EnsureAsync(p.Id, renew: true, CancellationToken.None, failedPassword: kept);
        for (var i = 0; i < 5; i++)
        {
            var res = await http.GetAsync($"/db/{p.Id}/rest/t");
            Assert.True(res.StatusCode == HttpStatusCode.OK, $"{(int)res.StatusCode}: {await res.Content.ReadAsStringAsync()}");
        }
        rest.Return(held);
        // The refused password was not renewed again: the one the other instance set still logs in.
        Assert.Equal(renewed, await logins.EnsureAsync(p.Id, renew: false, CancellationToken.None));
        Assert.True(await LogsInAsync(p.Id, renewed));
    }
}
