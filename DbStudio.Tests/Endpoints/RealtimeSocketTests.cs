// supabase-js's realtime socket (DESIGN §5) at the frame level: the Phoenix messages realtime-js sends (vsn 2.0.0
// arrays and 1.0.0 objects) and the exact replies, system messages and postgres_changes payloads it parses — fed by the
// same hub and PostgreSQL-decided visibility as the SSE stream, refused and ended as the stream is.
using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class RealtimeSocketTests(TestApp app)
{
    private async Task<(HttpClient Owner, ProjectInfo P)> ProjectAsync()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "realtime");
        await TestApp.SqlAsync(owner, p.Id, "create table items (id serial primary key, name text, qty int, user_id uuid)");
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/items/access", new
        {
            anon_select = false, anon_insert = false, auth_insert = true, auth_select_own = true, auth_update_own = true,
            auth_delete_own = true, user_id_col = "user_id",
        })).EnsureSuccessStatusCode();
        return (owner, p);
    }

    private async Task<(string Token, string Id)> SignupAsync(ProjectInfo p, string who)
    {
        var req = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/auth/signup")
            { Content = JsonContent.Create(new { email = $"{who}-{Guid.NewGuid():N}@example.com", password = $"{who} password" }) };
        req.Headers.Add("apikey", p.AnonKey);
        var s = await (await app.Factory.CreateClient().SendAsync(req)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonElement>();
        return (s.GetProperty("access_token").GetString()!, s.GetProperty("user").GetProperty("id").GetString()!);
    }

    private async Task<JsonElement> RestAsync(ProjectInfo p, HttpMethod method, string path, string bearer, object? body = null)
    {
        var req = new HttpRequestMessage(method, $"/db/{p.Id}/rest/{path}") { Content = body is null ? null : JsonContent.Create(body) };
        req.Headers.Add("apikey", p.AnonKey);
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        req.Headers.Add("Prefer", "return=representation");
        var res = await app.Factory.CreateClient().SendAsync(req);
        var text = await res.Content.ReadAsStringAsync();
        Assert.True(res.IsSuccessStatusCode, text);
        return JsonSerializer.Deserialize<JsonElement>(text);
    }

    /// <summary>A raw Phoenix client: sends frames, reads them one by one (each read waits at most 15 s).</summary>
    private sealed class Phoenix(ClientWebSocket ws, bool arrays) : IAsyncDisposable
    {
        private int _ref;

        public static async Task<Phoenix> ConnectAsync(Uri baseUrl, string projectId, string apikey, string vsn = "2.0.0")
        {
            var ws = new ClientWebSocket();
            var url = new UriBuilder(baseUrl) { Scheme = "ws", Path = $"/db/{projectId}/supabase/realtime/v1/websocket", Query = $"apikey={apikey}&vsn={vsn}" };
            await ws.ConnectAsync(url.Uri, CancellationToken.None);
            return new Phoenix(ws, vsn == "2.0.0");
        }

        public async Task<string> SendAsync(string topic, string evt, object payload, string? joinRef = null)
        {
            var r = (++_ref).ToString();
            var frame = arrays
                ? JsonSerializer.Serialize(new object?[] { joinRef, r, topic, evt, payload })
                : JsonSerializer.Serialize(new { topic, @event = evt, payload, @ref = r, join_ref = joinRef });
            await ws.SendAsync(Encoding.UTF8.GetBytes(frame), WebSocketMessageType.Text, true, CancellationToken.None);
            return r;
        }

        /// <summary>The next frame as (join_ref, ref, topic, event, payload); null when the server closed.</summary>
        public async Task<(string? JoinRef, string? Ref, string Topic, string Event, JsonNode Payload)?> ReadAsync()
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            var buffer = new byte[1 << 16];
            var text = new StringBuilder();
            WebSocketReceiveResult r;
            do
            {
                r = await ws.ReceiveAsync(buffer, timeout.Token);
                if (r.MessageType == WebSocketMessageType.Close) return null;
                text.Append(Encoding.UTF8.GetString(buffer, 0, r.Count));
            } while (!r.EndOfMessage);
            var node = JsonNode.Parse(text.ToString())!;
            return arrays
                ? ((string?)node[0], (string?)node[1], (string)node[2]!, (string)node[3]!, node[4]!)
                : ((string?)node["join_ref"], (string?)node["ref"], (string)node["topic"]!, (string)node["event"]!, node["payload"]!);
        }

        /// <summary>Reads until a frame of <paramref name="evt"/> on <paramref name="topic"/> (others are skipped).</summary>
        public async Task<JsonNode> ExpectAsync(string topic, string evt)
        {
            while (true)
            {
                var m = await ReadAsync() ?? throw new Xunit.Sdk.XunitException($"closed while waiting for {evt}");
                if (m.Topic == topic && m.Event == evt) return m.Payload;
                if (m.Topic == topic && m.Event == "phx_close") throw new Xunit.Sdk.XunitException($"{topic} closed while waiting for {evt}");
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (ws.State == WebSocketState.Open)
                try { await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None); } catch (WebSocketException) { }
            ws.Dispose();
        }
    }

    private static object Join(object[] changes, string? token) => token is null
        ? new { config = new { broadcast = new { ack = false, self = false }, presence = new { key = "", enabled = false }, postgres_changes = changes, @private = false } }
        : new { config = new { broadcast = new { ack = false, self = false }, presence = new { key = "", enabled = false }, postgres_changes = changes, @private = false }, access_token = token };

    [Fact]
    public async Task Join_heartbeat_changes_with_a_filter_and_leave_in_phoenix_frames()
    {
        var (_, p) = await ProjectAsync();
        var (token, userId) = await SignupAsync(p, "ann");
        var (other, _) = await SignupAsync(p, "ben");
        await using var ph = await Phoenix.ConnectAsync(app.BaseUrl, p.Id, p.AnonKey);

        var hb = await ph.SendAsync("phoenix", "heartbeat", new { });
        var beat = await ph.ReadAsync();
        Assert.Equal(("phoenix", "phx_reply", hb), (beat!.Value.Topic, beat.Value.Event, beat.Value.Ref));
        Assert.Equal("ok", (string?)beat.Value.Payload["status"]);

        var join = await ph.SendAsync("realtime:watch", "phx_join",
            Join([new { @event = "*", schema = "public", table = "items", filter = "name=eq.watched" }], token), joinRef: "1");
        var reply = await ph.ReadAsync();
        Assert.Equal(("1", join, "realtime:watch", "phx_reply"), (reply!.Value.JoinRef, reply.Value.Ref, reply.Value.Topic, reply.Value.Event));
        Assert.Equal("ok", (string?)reply.Value.Payload["status"]);
        var binding = reply.Value.Payload["response"]!["postgres_changes"]![0]!;
        Assert.Equal(("*", "public", "items", "name=eq.watched"),
            ((string?)binding["event"], (string?)binding["schema"], (string?)binding["table"], (string?)binding["filter"]));
        var id = (int)binding["id"]!;
        var system = await ph.ExpectAsync("realtime:watch", "system");
        Assert.Equal(("postgres_changes", "ok", "watch"), ((string?)system["extension"], (string?)system["status"], (string?)system["channel"]));

        // Each change is awaited before the next write: the stream reads a changed row back as it is when the change is
        // handed out (a row deleted meanwhile is no longer there to show).
        await RestAsync(p, HttpMethod.Post, "items", other, new { name = "watched", qty = 0 }); // ben's: not ann's to see
        await RestAsync(p, HttpMethod.Post, "items", token, new { name = "ignored", qty = 1 }); // not the filter's
        var row = (await RestAsync(p, HttpMethod.Post, "items", token, new { name = "watched", qty = 1 }))[0];
        var changes = new List<JsonNode> { await ph.ExpectAsync("realtime:watch", "postgres_changes") };
        await RestAsync(p, HttpMethod.Patch, $"items?id=eq.{row.GetProperty("id")}", token, new { qty = 2 });
        changes.Add(await ph.ExpectAsync("realtime:watch", "postgres_changes"));
        await RestAsync(p, HttpMethod.Delete, $"items?id=eq.{row.GetProperty("id")}", token);
        changes.Add(await ph.ExpectAsync("realtime:watch", "postgres_changes"));
        Assert.All(changes, c => Assert.Equal(id, (int)c["ids"]![0]!));
        Assert.Equal(["INSERT", "UPDATE", "DELETE"], changes.Select(c => (string)c["data"]!["type"]!));
        var insert = changes[0]["data"]!;
        Assert.Equal(("public", "items"), ((string?)insert["schema"], (string?)insert["table"]));
        Assert.True(DateTimeOffset.TryParse((string?)insert["commit_timestamp"], out _));
        Assert.Equal(userId, (string?)insert["record"]!["user_id"]);
        Assert.Null(insert["old_record"]);
        Assert.Contains(insert["columns"]!.AsArray(), c => (string?)c!["name"] == "qty");
        // The old row is gone from the table: its key only (as Realtime sends it without REPLICA IDENTITY FULL).
        Assert.Equal(row.GetProperty("id").GetInt32(), (int)changes[1]["data"]!["old_record"]!["id"]!);
        Assert.Equal(2, (int)changes[1]["data"]!["record"]!["qty"]!);
        Assert.Equal(row.GetProperty("id").GetInt32(), (int)changes[2]["data"]!["old_record"]!["id"]!);
        Assert.Null(changes[2]["data"]!["record"]);

        var leave = await ph.SendAsync("realtime:watch", "phx_leave", new { }, joinRef: "1");
        var left = await ph.ExpectAsync("realtime:watch", "phx_reply");
        Assert.Equal("ok", (string?)left["status"]);
        var stray = await ph.SendAsync("realtime:watch", "access_token", new { access_token = token }, joinRef: "1");
        var unmatched = await ph.ExpectAsync("realtime:watch", "phx_reply");
        Assert.Equal(("error", "unmatched topic"), ((string?)unmatched["status"], (string?)unmatched["response"]!["reason"]));
    }

    [Fact]
    public async Task Refusals_come_as_join_errors_and_a_revoked_token_closes_the_channel()
    {
        var (_, p) = await ProjectAsync();
        var (token, _) = await SignupAsync(p, "cy");
        await using var ph = await Phoenix.ConnectAsync(app.BaseUrl, p.Id, p.AnonKey, vsn: "1.0.0");

        // Anon may not read items: the join is refused with PostgreSQL's reason.
        await ph.SendAsync("realtime:anon", "phx_join", Join([new { @event = "*", schema = "public", table = "items" }], null), joinRef: "1");
        var refused = await ph.ExpectAsync("realtime:anon", "phx_reply");
        Assert.Equal("error", (string?)refused["status"]);
        Assert.Contains("permission denied", (string?)refused["response"]!["reason"]);
        // Another schema, a bad filter, a made-up token, presence: refused in the same shape.
        foreach (var (change, tok) in new (object, string?)[]
                 {
                     (new { @event = "*", schema = "auth", table = "items" }, token),
                     (new { @event = "*", schema = "public", table = "items", filter = "nofilter" }, token),
                     (new { @event = "TRUNCATE", schema = "public", table = "items" }, token),
                     (new { @event = "*", schema = "public", table = "nosuchtable" }, token),
                     (new { @event = "*", schema = "public", table = "items" }, "made-up-token"),
                 })
        {
            await ph.SendAsync("realtime:bad", "phx_join", Join([change], tok), joinRef: "2");
            Assert.Equal("error", (string?)(await ph.ExpectAsync("realtime:bad", "phx_reply"))["status"]);
        }
        await ph.SendAsync("realtime:presence", "phx_join", new { config = new { presence = new { key = "", enabled = true } }, access_token = token }, joinRef: "3");
        Assert.Contains("Presence", (string?)(await ph.ExpectAsync("realtime:presence", "phx_reply"))["response"]!["reason"]);

        // A joined channel: broadcast is refused; signing out (the token is revoked) ends the channel.
        await ph.SendAsync("realtime:mine", "phx_join", Join([new { @event = "*", schema = "public", table = "items" }], token), joinRef: "4");
        Assert.Equal("ok", (string?)(await ph.ExpectAsync("realtime:mine", "phx_reply"))["status"]);
        await ph.SendAsync("realtime:mine", "broadcast", new { type = "broadcast", @event = "hi", payload = new { } }, joinRef: "4");
        Assert.Contains("Broadcast", (string?)(await ph.ExpectAsync("realtime:mine", "phx_reply"))["response"]!["reason"]);
        var logout = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/auth/logout");
        logout.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        Assert.Equal(HttpStatusCode.NoContent, (await app.Factory.CreateClient().SendAsync(logout)).StatusCode);
        await app.Service<DbStudio.Core.Streams.ChangeHub>().CheckCredentialsAsync();
        var system = await ph.ExpectAsync("realtime:mine", "system");
        Assert.Equal(("system", "error"), ((string?)system["extension"], (string?)system["status"]));
        await ph.ExpectAsync("realtime:mine", "phx_close");
    }

    [Fact]
    public async Task A_refreshed_token_keeps_the_channel_and_misses_nothing()
    {
        var (_, p) = await ProjectAsync();
        var signup = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/auth/signup")
            { Content = JsonContent.Create(new { email = $"dee-{Guid.NewGuid():N}@example.com", password = "dee password" }) };
        signup.Headers.Add("apikey", p.AnonKey);
        var session = await (await app.Factory.CreateClient().SendAsync(signup)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonElement>();
        await using var ph = await Phoenix.ConnectAsync(app.BaseUrl, p.Id, p.AnonKey);
        await ph.SendAsync("realtime:mine", "phx_join",
            Join([new { @event = "*", schema = "public", table = "items" }], session.GetProperty("access_token").GetString()), joinRef: "1");
        Assert.Equal("ok", (string?)(await ph.ExpectAsync("realtime:mine", "phx_reply"))["status"]);

        // A refresh ends the old token at once; realtime-js then sends the new one (access_token).
        var refresh = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/auth/refresh")
            { Content = JsonContent.Create(new { refresh_token = session.GetProperty("refresh_token").GetString() }) };
        refresh.Headers.Add("apikey", p.AnonKey);
        var next = (await (await app.Factory.CreateClient().SendAsync(refresh)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonElement>())
            .GetProperty("access_token").GetString()!;
        var row = (await RestAsync(p, HttpMethod.Post, "items", next, new { name = "during the refresh" }))[0];
        await app.Service<DbStudio.Core.Streams.ChangeHub>().CheckCredentialsAsync(); // the old token's subscription ends
        await ph.SendAsync("realtime:mine", "access_token", new { access_token = next }, joinRef: "1");
        var insert = await ph.ExpectAsync("realtime:mine", "postgres_changes");
        Assert.Equal(("INSERT", row.GetProperty("id").GetInt32()), ((string?)insert["data"]!["type"], (int)insert["data"]!["record"]!["id"]!));
        await RestAsync(p, HttpMethod.Patch, $"items?id=eq.{row.GetProperty("id")}", next, new { qty = 3 });
        var update = await ph.ExpectAsync("realtime:mine", "postgres_changes");
        Assert.Equal(("UPDATE", 3), ((string?)update["data"]!["type"], (int)update["data"]!["record"]!["qty"]!));
    }

    [Fact]
    public async Task A_role_change_ends_the_channel()
    {
        var (_, p) = await ProjectAsync();
        var (token, userId) = await SignupAsync(p, "eve");
        await using var ph = await Phoenix.ConnectAsync(app.BaseUrl, p.Id, p.AnonKey);
        await ph.SendAsync("realtime:mine", "phx_join", Join([new { @event = "*", schema = "public", table = "items" }], token), joinRef: "1");
        Assert.Equal("ok", (string?)(await ph.ExpectAsync("realtime:mine", "phx_reply"))["status"]);
        Assert.Equal("ok", (string?)(await ph.ExpectAsync("realtime:mine", "system"))["status"]); // Subscribed to PostgreSQL
        var promote = new HttpRequestMessage(HttpMethod.Patch, $"/db/{p.Id}/auth/users/{userId}") { Content = JsonContent.Create(new { role = "admin" }) };
        promote.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
        (await app.Factory.CreateClient().SendAsync(promote)).EnsureSuccessStatusCode();
        await app.Service<DbStudio.Core.Streams.ChangeHub>().CheckCredentialsAsync();
        var system = await ph.ExpectAsync("realtime:mine", "system");
        Assert.Equal("error", (string?)system["status"]);
        Assert.Contains("role", (string?)system["message"]);
        await ph.ExpectAsync("realtime:mine", "phx_close");
    }

    [Fact]
    public async Task The_socket_needs_the_projects_key()
    {
        var (_, p) = await ProjectAsync();
        var client = new HttpClient { BaseAddress = app.BaseUrl };
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync($"/db/{p.Id}/supabase/realtime/v1/websocket?apikey=anon_wrong&vsn=2.0.0")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync($"/db/{p.Id}/supabase/realtime/v1/websocket?apikey={p.AnonKey}&vsn=2.0.0")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync($"/db/{p.Id}/supabase/realtime/v1/websocket?apikey={p.AnonKey}&vsn=9")).StatusCode);
        await Assert.ThrowsAnyAsync<WebSocketException>(() => Phoenix.ConnectAsync(app.BaseUrl, p.Id, "anon_wrong"));
    }
}
