// Rotating keys and resetting the owner password (issue 6 §5): the old credential stops at once — on every app
// instance — and the other keeps working; a reset also repairs an owner password changed from the console.
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace DbStudio.Tests.Endpoints;

public class KeyRotationTests(TestApp app)
{
    private static async Task<HttpStatusCode> ReadAsync(HttpClient http, ProjectInfo p, string? anon = null, string? bearer = null)
    {
        var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/things");
        if (anon is not null) req.Headers.Add("apikey", anon);
        if (bearer is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return (await http.SendAsync(req)).StatusCode;
    }

    private async Task<(HttpClient Owner, ProjectInfo Project)> ProjectAsync()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "keys");
        await TestApp.SqlAsync(owner, p.Id, "create table things (id serial primary key, name text)");
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/things/access", new
        {
            anon_select = true, anon_insert = false, auth_insert = true, auth_select_own = true, auth_update_own = true, auth_delete_own = true,
            user_id_col = (string?)null,
        })).EnsureSuccessStatusCode();
        return (owner, p);
    }

    [Fact]
    public async Task Rotating_a_key_stops_the_old_one_at_once_and_leaves_the_other_working()
    {
        var (owner, p) = await ProjectAsync();
        var http = app.Factory.CreateClient();
        Assert.Equal(HttpStatusCode.OK, await ReadAsync(http, p, anon: p.AnonKey)); // cached now

        var rotated = await (await owner.PostAsync($"/api/projects/{p.Id}/keys/anon/rotate", null)).EnsureSuccessStatusCode()
            .Content.ReadFromJsonAsync<ProjectInfo>();
        Assert.NotEqual(p.AnonKey, rotated!.AnonKey);
        Assert.Equal(p.ApiKey, rotated.ApiKey);
        Assert.Equal(HttpStatusCode.Unauthorized, await ReadAsync(http, p, anon: p.AnonKey));
        Assert.Equal(HttpStatusCode.OK, await ReadAsync(http, p, anon: rotated.AnonKey));
        Assert.Equal(HttpStatusCode.OK, await ReadAsync(http, p, bearer: p.ApiKey));

        var again = await (await owner.PostAsync($"/api/projects/{p.Id}/keys/api/rotate", null)).EnsureSuccessStatusCode()
            .Content.ReadFromJsonAsync<ProjectInfo>();
        Assert.Equal(HttpStatusCode.Unauthorized, await ReadAsync(http, p, bearer: p.ApiKey));
        Assert.Equal(HttpStatusCode.OK, await ReadAsync(http, p, bearer: again!.ApiKey));
        Assert.Equal(HttpStatusCode.OK, await ReadAsync(http, p, anon: rotated.AnonKey));
        // What the owner reads back is the new pair.
        var now = await owner.GetFromJsonAsync<ProjectInfo>($"/api/projects/{p.Id}");
        Assert.Equal((rotated.AnonKey, again.ApiKey), (now!.AnonKey, now.ApiKey));

        Assert.Equal(HttpStatusCode.BadRequest, (await owner.PostAsync($"/api/projects/{p.Id}/keys/owner/rotate", null)).StatusCode);
        var stranger = await app.NewUserClientAsync();
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.PostAsync($"/api/projects/{p.Id}/keys/anon/rotate", null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, await ReadAsync(http, p, anon: rotated.AnonKey)); // the stranger changed nothing
    }

    [Fact]
    public async Task Another_instance_stops_accepting_a_rotated_key_and_applies_new_access_settings()
    {
        var (owner, p) = await ProjectAsync();
        await using var second = new AppFactory(app.Db.PlatformConnectionString);
        var other = second.CreateClient();
        Assert.Equal(HttpStatusCode.OK, await ReadAsync(other, p, anon: p.AnonKey)); // the second instance caches the key

        (await owner.PostAsync($"/api/projects/{p.Id}/keys/anon/rotate", null)).EnsureSuccessStatusCode(); // through the first
        await UntilAsync(async () => await ReadAsync(other, p, anon: p.AnonKey) == HttpStatusCode.Unauthorized);

        var fresh = (await owner.GetFromJsonAsync<ProjectInfo>($"/api/projects/{p.Id}"))!;
        Assert.Equal(HttpStatusCode.OK, await ReadAsync(other, p, anon: fresh.AnonKey));
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/things/access", new
        {
            anon_select = false, anon_insert = false, auth_insert = true, auth_select_own = true, auth_update_own = true, auth_delete_own = true,
            user_id_col = (string?)null,
        })).EnsureSuccessStatusCode();
        // RLS refuses at once everywhere (it is PostgreSQL's); the second instance's cached settings follow too.
        await UntilAsync(async () =>
        {
            var res = await other.GetAsync($"/db/{p.Id}/rest/things/stream?apikey={fresh.AnonKey}", HttpCompletionOption.ResponseHeadersRead);
            return res.StatusCode == HttpStatusCode.Unauthorized;
        });
    }

    private static async Task UntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "not within 5 s");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Resetting_the_owner_password_replaces_the_connection_url_and_repairs_a_console_change()
    {
        var (owner, p) = await ProjectAsync();
        Assert.Equal(0, await PsqlAsync(p.ConnectionUrl));
        // The owner changes its own password from the console: the stored Connection URL no longer works.
        var changed = await TestApp.SqlAsync(owner, p.Id, "alter role current_user password 'my own password'");
        Assert.False(changed[0].TryGetProperty("error", out var e), e.ToString());
        Assert.NotEqual(0, await PsqlAsync(p.ConnectionUrl));

        var reset = await (await owner.PostAsync($"/api/projects/{p.Id}/owner/reset-password", null)).EnsureSuccessStatusCode()
            .Content.ReadFromJsonAsync<ProjectInfo>();
        Assert.NotEqual(p.ConnectionUrl, reset!.ConnectionUrl);
        Assert.Equal(0, await PsqlAsync(reset.ConnectionUrl));
        Assert.NotEqual(0, await PsqlAsync(p.ConnectionUrl));
        // The console (its pool was dropped by the reset's announcement) works with the new password.
        var after = await TestApp.SqlAsync(owner, p.Id, "select count(*) from things");
        Assert.False(after[0].TryGetProperty("error", out var e2), e2.ToString());
    }

    private static async Task<int> PsqlAsync(string url) => (await TestApp.PsqlAsync(url, "-tAc", "select 1")).ExitCode;
}
