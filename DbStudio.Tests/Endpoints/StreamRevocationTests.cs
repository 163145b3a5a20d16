// Open streams follow their credential (issue 11): logout, expiry, a deleted end user, a role change, key rotation and
// project deletion end them with `event: revoked` — on every instance — while narrowed access rights narrow what they
// receive at once. Resuming is no history API: ids are valid only for the credential and table they were given to.
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Core.Auth;
using DbStudio.Core.Projects;
using DbStudio.Core.Streams;
using DbStudio.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace DbStudio.Tests.Endpoints;

public class StreamRevocationTests(TestApp app)
{
    private sealed record World(HttpClient Owner, ProjectInfo P);

    private async Task<World> WorldAsync(bool anonSelect = true)
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "revocation");
        await TestApp.SqlAsync(owner, p.Id, "create table notes (id serial primary key, title text, user_id uuid)");
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/notes/access", new
        {
            anon_select = anonSelect, anon_insert = false, auth_insert = true, auth_select_own = true, auth_update_own = true,
            auth_delete_own = true, user_id_col = "user_id",
        })).EnsureSuccessStatusCode();
        return new World(owner, p);
    }

    private async Task<JsonElement> Send(Uri baseUrl, HttpMethod method, string path, string? bearer, string? apikey, object? body)
    {
        using var http = new HttpClient { BaseAddress = baseUrl };
        var req = new HttpRequestMessage(method, path);
        if (bearer is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        if (apikey is not null) req.Headers.Add("apikey", apikey);
        req.Headers.Add("Prefer", "return=representation");
        if (body is not null) req.Content = JsonContent.Create(body);
        var res = await http.SendAsync(req);
        var text = await res.Content.ReadAsStringAsync();
        Assert.True(res.IsSuccessStatusCode, $"{method} {path}: {(int)res.StatusCode} {text}");
        return text.Length == 0 ? default : JsonSerializer.Deserialize<JsonElement>(text);
    }

    private async Task<(string Token, string Id)> SignupAsync(ProjectInfo p)
    {
        var s = await Send(app.BaseUrl, HttpMethod.Post, $"/db/{p.Id}/auth/signup", null, p.AnonKey,
            new { email = $"u{Guid.NewGuid():N}@example.com", password = "a user password" });
        return (s.GetProperty("access_token").GetString()!, s.GetProperty("user").GetProperty("id").GetString()!);
    }

    private static Task<SseClient> OpenAsync(Uri baseUrl, ProjectInfo p, string? token, string table = "notes", string? lastEventId = null) =>
        SseClient.OpenAsync(baseUrl, $"/db/{p.Id}/rest/{table}/stream?apikey={p.AnonKey}", token, lastEventId);

    /// <summary>Reads until the stream says it was revoked (events before it are allowed), then checks that it ended.</summary>
    private static async Task AssertRevokedAsync(SseClient s, string why)
    {
        while (true)
        {
            SseEvent e;
            try { e = await s.NextAsync(TimeSpan.FromSeconds(20)); }
            catch (Exception ex) { throw new Xunit.Sdk.XunitException($"{why}: no revoked event ({ex.Message}); raw: {s.Raw}"); }
            if (e.Type != "revoked") continue;
            Assert.Contains("credential", e.Data.GetProperty("reason").GetString());
            break;
        }
        await Assert.ThrowsAnyAsync<Exception>(() => s.NextAsync(TimeSpan.FromSeconds(20))); // and the stream ends
    }

    [Fact]
    public async Task Logout_on_another_instance_ends_the_stream()
    {
        var w = await WorldAsync();
        await using var second = new AppFactory(app.Db.PlatformConnectionString);
        var secondUrl = second.StartOnLoopback();
        var (token, _) = await SignupAsync(w.P);
        await using var onSecond = await OpenAsync(secondUrl, w.P, token);
        Assert.Equal(HttpStatusCode.OK, onSecond.Response.StatusCode);
        // The second instance has validated (and cached) the token; the logout goes through the first.
        await Send(app.BaseUrl, HttpMethod.Post, $"/db/{w.P.Id}/auth/logout", token, w.P.AnonKey, null);
        await AssertRevokedAsync(onSecond, "logout elsewhere");
    }

    [Fact]
    public async Task A_role_change_a_deleted_user_and_key_rotation_end_streams()
    {
        var w = await WorldAsync();
        var (promoted, promotedId) = await SignupAsync(w.P);
        var (deleted, deletedId) = await SignupAsync(w.P);
        await using var promotedStream = await OpenAsync(app.BaseUrl, w.P, promoted);
        await using var deletedStream = await OpenAsync(app.BaseUrl, w.P, deleted);
        await using var anonStream = await OpenAsync(app.BaseUrl, w.P, null);
        Assert.All([promotedStream, deletedStream, anonStream], s => Assert.Equal(HttpStatusCode.OK, s.Response.StatusCode));

        await Send(app.BaseUrl, HttpMethod.Patch, $"/db/{w.P.Id}/auth/users/{promotedId}", w.P.ApiKey, null, new { role = "admin" });
        await AssertRevokedAsync(promotedStream, "role change");

        await app.Service<EndUserAuth>().DeleteUserAsync(w.P.Id, Guid.Parse(deletedId));
        await AssertRevokedAsync(deletedStream, "deleted user");

        (await w.Owner.PostAsync($"/api/projects/{w.P.Id}/keys/anon/rotate", null)).EnsureSuccessStatusCode();
        await AssertRevokedAsync(anonStream, "key rotation");
    }

    [Fact]
    public async Task Project_deletion_ends_its_streams()
    {
        var w = await WorldAsync();
        await using var s = await OpenAsync(app.BaseUrl, w.P, null);
        Assert.Equal(HttpStatusCode.OK, s.Response.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await w.Owner.DeleteAsync($"/api/projects/{w.P.Id}")).StatusCode);
        await AssertRevokedAsync(s, "project deleted");
    }

    [Fact]
    public async Task An_expired_token_ends_the_stream()
    {
        var clock = new ShiftedClock();
        await using var factory = new AppFactory(app.Db.PlatformConnectionString, configure: services => services.AddSingleton<TimeProvider>(clock));
        var url = factory.StartOnLoopback();
        var owner = factory.CreateClient();
        var creds = new { email = $"e{Guid.NewGuid():N}@example.com", password = "a long enough password" };
        (await owner.PostAsJsonAsync("/api/auth/register", creds)).EnsureSuccessStatusCode();
        var login = await (await owner.PostAsJsonAsync("/api/auth/login", creds)).Content.ReadFromJsonAsync<JsonElement>();
        owner.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", login.GetProperty("accessToken").GetString());
        var p = await TestApp.CreateProjectAsync(owner, "expiry");
        await TestApp.SqlAsync(owner, p.Id, "create table notes (id serial primary key, title text, user_id uuid)");
        var session = await Send(url, HttpMethod.Post, $"/db/{p.Id}/auth/signup", null, p.AnonKey,
            new { email = $"u{Guid.NewGuid():N}@example.com", password = "a user password" });
        await using var s = await OpenAsync(url, p, session.GetProperty("access_token").GetString());
        Assert.Equal(HttpStatusCode.OK, s.Response.StatusCode);
        clock.Shift(EndUserAuth.AccessLifetime + TimeSpan.FromMinutes(1)); // the token's hour is over
        await AssertRevokedAsync(s, "expiry");
    }

    [Fact]
    public async Task Narrowed_access_narrows_an_open_stream_at_once()
    {
        var w = await WorldAsync(anonSelect: true);
        await using var s = await OpenAsync(app.BaseUrl, w.P, null);
        await Send(app.BaseUrl, HttpMethod.Post, $"/db/{w.P.Id}/rest/notes", w.P.ApiKey, null, new { title = "public" });
        Assert.Equal("public", (await s.NextAsync()).RecordText("title"));
        await TestApp.SqlAsync(w.Owner, w.P.Id, "create policy hide_secrets on notes as restrictive for select using (title <> 'secret')");
        await Send(app.BaseUrl, HttpMethod.Post, $"/db/{w.P.Id}/rest/notes", w.P.ApiKey, null, new { title = "secret" });
        await Send(app.BaseUrl, HttpMethod.Post, $"/db/{w.P.Id}/rest/notes", w.P.ApiKey, null, new { title = "still public" });
        Assert.Equal("still public", (await s.NextAsync()).RecordText("title")); // the secret one never came
    }

    [Fact]
    public async Task A_table_renamed_under_an_open_stream_keeps_streaming_under_its_own_policies()
    {
        var w = await WorldAsync(anonSelect: true);
        await using var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{w.P.Id}/rest/notes/stream", w.P.ApiKey);
        await Send(app.BaseUrl, HttpMethod.Post, $"/db/{w.P.Id}/rest/notes", w.P.ApiKey, null, new { title = "before" });
        Assert.Equal("before", (await s.NextAsync()).RecordText("title"));
        await TestApp.SqlAsync(w.Owner, w.P.Id, "alter table notes rename to memos");
        await Send(app.BaseUrl, HttpMethod.Post, $"/db/{w.P.Id}/rest/memos", w.P.ApiKey, null, new { title = "after" });
        Assert.Equal("after", (await s.NextAsync()).RecordText("title"));
    }

    [Fact]
    public async Task Resuming_takes_only_ids_given_to_the_same_credential_on_the_same_table()
    {
        var w = await WorldAsync(anonSelect: true);
        await TestApp.SqlAsync(w.Owner, w.P.Id, "create table other (id serial primary key, title text, user_id uuid)");
        var (alice, aliceId) = await SignupAsync(w.P);
        var (bob, _) = await SignupAsync(w.P);
        string aliceId1;
        await using (var s = await OpenAsync(app.BaseUrl, w.P, alice))
        {
            await Send(app.BaseUrl, HttpMethod.Post, $"/db/{w.P.Id}/rest/notes", alice, w.P.AnonKey, new { title = "alice's" });
            aliceId1 = (await s.NextAsync()).Id!;
        }
        await Send(app.BaseUrl, HttpMethod.Post, $"/db/{w.P.Id}/rest/notes", alice, w.P.AnonKey, new { title = "after" });

        // Alice resumes with her own id and gets exactly what she missed.
        await using (var again = await OpenAsync(app.BaseUrl, w.P, alice, lastEventId: aliceId1))
            Assert.Equal("after", (await again.NextAsync()).RecordText("title"));

        // Ids are opaque: nothing in one says where the log is (a counter would tell how often private tables change).
        Assert.Matches("^[A-Za-z0-9_-]{22}$", aliceId1);
        var change = (await app.StreamIdDecoderAsync(w.P.Id))(aliceId1)!.Value;
        var flipped = (aliceId1[5] == 'A' ? 'B' : 'A');
        string[] refused =
        [
            "0", "1", change.ToString(), $"{change}.{aliceId1}",           // plain positions: a history API would take these
            aliceId1[..5] + flipped + aliceId1[6..], aliceId1[..^1],         // forged, cut
            Convert.ToBase64String(new byte[16]).TrimEnd('=').Replace('+', '-').Replace('/', '_'),
        ];
        foreach (var id in refused)
        {
            await using var forged = await OpenAsync(app.BaseUrl, w.P, alice, lastEventId: id);
            Assert.Equal(HttpStatusCode.BadRequest, forged.Response.StatusCode);
        }
        // Another credential, another table: the same id means nothing there.
        await using (var asBob = await OpenAsync(app.BaseUrl, w.P, bob, lastEventId: aliceId1))
            Assert.Equal(HttpStatusCode.BadRequest, asBob.Response.StatusCode);
        await using (var asAnon = await OpenAsync(app.BaseUrl, w.P, null, lastEventId: aliceId1))
            Assert.Equal(HttpStatusCode.BadRequest, asAnon.Response.StatusCode);
        await using (var otherTable = await OpenAsync(app.BaseUrl, w.P, alice, "other", aliceId1))
            Assert.Equal(HttpStatusCode.BadRequest, otherTable.Response.StatusCode);

        // A table dropped and made again under the same name is another table: old ids do not replay its predecessor.
        await TestApp.SqlAsync(w.Owner, w.P.Id, "drop table notes; create table notes (id serial primary key, title text, user_id uuid)");
        await using (var remade = await OpenAsync(app.BaseUrl, w.P, alice, lastEventId: aliceId1))
            Assert.Equal(HttpStatusCode.BadRequest, remade.Response.StatusCode);
        _ = aliceId;
    }

    [Fact]
    public async Task Tenants_can_neither_read_nor_forge_platform_notifications()
    {
        var victim = await WorldAsync();
        var attacker = await WorldAsync();
        await using var listen = new Npgsql.NpgsqlConnection(
            DbStudio.Tests.Integration.ConfinementTests.ConnectionStringFromUrl(attacker.P.ConnectionUrl));
        await listen.OpenAsync();
        var heard = new System.Collections.Concurrent.ConcurrentQueue<string>();
        listen.Notification += (_, e) => heard.Enqueue($"{e.Channel}:{e.Payload}");
        await using (var cmd = new Npgsql.NpgsqlCommand("LISTEN dbstudio_changes; LISTEN dbstudio_platform", listen)) await cmd.ExecuteNonQueryAsync();

        // Another project signals first (as other tests' projects do at any time): its signal is not the victim's.
        (await attacker.Owner.PostAsync($"/api/projects/{attacker.P.Id}/keys/anon/rotate", null)).EnsureSuccessStatusCode();
        // The victim is busy: writes, a logout, a key rotation.
        await using var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{victim.P.Id}/rest/notes/stream", victim.P.ApiKey);
        await Send(app.BaseUrl, HttpMethod.Post, $"/db/{victim.P.Id}/rest/notes", victim.P.ApiKey, null, new { title = "busy" });
        Assert.Equal("busy", (await s.NextAsync()).RecordText("title"));
        var (token, _) = await SignupAsync(victim.P);
        await Send(app.BaseUrl, HttpMethod.Post, $"/db/{victim.P.Id}/auth/logout", token, victim.P.AnonKey, null);
        (await victim.Owner.PostAsync($"/api/projects/{victim.P.Id}/keys/anon/rotate", null)).EnsureSuccessStatusCode();
        // Wait for the victim's own traffic: its write's change signal and a platform signal after it (its logout and
        // rotation come later). Other tests' projects signal on the same channels at any time, so a platform signal
        // heard first may be theirs, from before the victim's write.
        bool HeardVictimsTraffic()
        {
            var all = heard.ToArray();
            var change = Array.FindIndex(all, h => h.StartsWith("dbstudio_changes:"));
            return change >= 0 && Array.FindIndex(all, change + 1, h => h.StartsWith("dbstudio_platform:")) > change;
        }
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!HeardVictimsTraffic() && DateTime.UtcNow < deadline)
            await listen.WaitAsync(TimeSpan.FromMilliseconds(200));
        Assert.True(HeardVictimsTraffic(), "heard: " + string.Join(" | ", heard));
        Assert.DoesNotContain(heard, h => h.Contains(victim.P.Id)); // nothing names the victim

        // Forged signals (the old plain form) change nothing, and a replayed one is ignored (PlatformSignalsTests): the victim's stream
        // stays open and live.
        await using (var forge = new Npgsql.NpgsqlCommand(
            $"SELECT pg_notify('dbstudio_platform', 'project:{victim.P.Id}:'), pg_notify('dbstudio_platform', 'keys:{victim.P.Id}:'), " +
            $"pg_notify('dbstudio_platform', '{heard.Last(h => h.StartsWith("dbstudio_platform:"))["dbstudio_platform:".Length..]}')", listen))
            await forge.ExecuteNonQueryAsync();
        await app.Service<ChangeHub>().CheckCredentialsAsync();
        await Send(app.BaseUrl, HttpMethod.Post, $"/db/{victim.P.Id}/rest/notes", victim.P.ApiKey, null, new { title = "still live" });
        Assert.Equal("still live", (await s.NextAsync()).RecordText("title"));
    }

    [Fact]
    public async Task Filters_that_postgres_would_refuse_on_some_row_are_refused_up_front()
    {
        var w = await WorldAsync(anonSelect: true);
        foreach (var filter in new[] { "title=like.pin%3D9%5C", "title=ilike.*%5C", "title=match.(", "title=imatch.[a-" })
        {
            await using var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{w.P.Id}/rest/notes/stream?apikey={w.P.AnonKey}&{filter}");
            Assert.Equal(HttpStatusCode.BadRequest, s.Response.StatusCode);
        }
    }

    [Fact]
    public async Task Hundreds_of_subscribers_with_their_own_filters_share_one_identity_and_each_gets_its_events()
    {
        var w = await WorldAsync(anonSelect: true);
        const int streams = 230; // more audiences than one statement takes
        var open = new List<SseClient>();
        try
        {
            for (var i = 0; i < streams; i++)
            {
                var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{w.P.Id}/rest/notes/stream?apikey={w.P.AnonKey}&id=neq.{i + 1}");
                Assert.Equal(HttpStatusCode.OK, s.Response.StatusCode);
                open.Add(s);
            }
            await TestApp.SqlAsync(w.Owner, w.P.Id, "insert into notes (id, title) values (100000, 'for everyone')");
            foreach (var s in open) Assert.Equal("for everyone", (await s.NextAsync(TimeSpan.FromSeconds(60))).RecordText("title"));
        }
        finally { foreach (var s in open) await s.DisposeAsync(); }
    }

    [Fact]
    public async Task A_row_too_large_to_stream_reaches_nobody_and_the_stream_goes_on()
    {
        var w = await WorldAsync(anonSelect: true);
        await using var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{w.P.Id}/rest/notes/stream", w.P.ApiKey);
        // Compresses to little on disk, but is 2 MB of text: never read into the app's memory.
        await TestApp.SqlAsync(w.Owner, w.P.Id, "insert into notes (title) values (repeat('x', 2000000))");
        await TestApp.SqlAsync(w.Owner, w.P.Id, "insert into notes (title) values ('small')");
        Assert.Equal("small", (await s.NextAsync()).RecordText("title"));
    }

    /// <summary>The system clock, shifted on demand (timers keep real time).</summary>
    private sealed class ShiftedClock : TimeProvider
    {
        private long _shiftTicks;
        public void Shift(TimeSpan by) => Interlocked.Add(ref _shiftTicks, by.Ticks);
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + TimeSpan.FromTicks(Interlocked.Read(ref _shiftTicks));
    }
}
