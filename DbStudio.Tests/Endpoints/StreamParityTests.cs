// The stream shows each subscriber exactly what GET shows it (DESIGN §6, issue 11): a matrix of access settings,
// hand-written permissive and restrictive policies (one through a subquery), column grants, a text owner column with
// an upper-case UUID, a partitioned table and a rename, × every credential kind, × inserts, updates and deletes. For
// every credential the rows rebuilt from its events must come to equal GET's answer, no event may name a row GET never
// showed that credential, and no event may carry a column its role cannot SELECT.
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using Npgsql;

namespace DbStudio.Tests.Endpoints;

public class StreamParityTests(TestApp app)
{
    private sealed record Who(string Name, string Role, string? Bearer, string? ApiKey);

    private sealed class Follower(Who who, SseClient stream)
    {
        public Who Who { get; } = who;
        public SseClient Stream { get; } = stream;
        public Dictionary<string, JsonElement> Rows { get; } = [];
        public HashSet<string> EverVisible { get; } = [];
        public List<SseEvent> Events { get; } = [];
    }

    private sealed class World
    {
        public required HttpClient Owner { get; init; }
        public required ProjectInfo P { get; init; }
        public required Who[] Callers { get; init; }
        public required string Alice { get; init; }
        public required string Bob { get; init; }
    }

    private async Task<World> WorldAsync()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "parity");
        async Task<(string Token, string Id)> Signup(string who)
        {
            var res = await Send(p, HttpMethod.Post, "/auth/signup", null, p.AnonKey,
                new { email = $"{who}-{Guid.NewGuid():N}@example.com", password = $"{who} password" });
            return (res.GetProperty("access_token").GetString()!, res.GetProperty("user").GetProperty("id").GetString()!);
        }
        var (alice, aliceId) = await Signup("alice");
        var (bob, bobId) = await Signup("bob");
        var (carol, carolId) = await Signup("carol");
        await Send(p, HttpMethod.Patch, $"/auth/users/{carolId}", p.ApiKey, null, new { role = "admin" });
        return new World
        {
            Owner = owner, P = p, Alice = aliceId, Bob = bobId,
            Callers =
            [
                new("anon", $"proj_{p.Id}_anon", null, p.AnonKey),
                new("alice", $"proj_{p.Id}_user", alice, p.AnonKey),
                new("bob", $"proj_{p.Id}_user", bob, p.AnonKey),
                new("carol (admin end user)", $"proj_{p.Id}_user_admin", carol, p.AnonKey),
                new("DB_API_KEY", $"proj_{p.Id}_owner", p.ApiKey, null),
            ],
        };
    }

    private async Task<JsonElement> Send(ProjectInfo p, HttpMethod method, string path, string? bearer, string? apikey, object? body,
        bool ensure = true)
    {
        var req = new HttpRequestMessage(method, $"/db/{p.Id}{path}");
        if (bearer is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        if (apikey is not null) req.Headers.Add("apikey", apikey);
        req.Headers.Add("Prefer", "return=representation");
        if (body is not null) req.Content = JsonContent.Create(body);
        var res = await app.Factory.CreateClient().SendAsync(req);
        var text = await res.Content.ReadAsStringAsync();
        if (ensure) Assert.True(res.IsSuccessStatusCode, $"{method} {path}: {(int)res.StatusCode} {text}");
        return text.Length == 0 ? default : JsonSerializer.Deserialize<JsonElement>(text);
    }

    private async Task Sql(World w, string sql)
    {
        foreach (var r in await TestApp.SqlAsync(w.Owner, w.P.Id, sql))
            Assert.False(r.TryGetProperty("error", out var e), $"{sql}: {e}");
    }

    private async Task Access(World w, string table, bool anonSelect, string? owner = "user_id") =>
        (await w.Owner.PutAsJsonAsync($"/api/projects/{w.P.Id}/tables/{table}/access", new
        {
            anon_select = anonSelect, anon_insert = false, auth_insert = true, auth_select_own = true, auth_update_own = true,
            auth_delete_own = true, user_id_col = owner,
        })).EnsureSuccessStatusCode();

    /// <summary>What GET shows <paramref name="who"/>: id → row (the columns every caller may read).</summary>
    private async Task<Dictionary<string, JsonElement>> GetAsync(World w, string table, Who who)
    {
        var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{w.P.Id}/rest/{table}?select=id,title&order=id");
        if (who.Bearer is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", who.Bearer);
        if (who.ApiKey is not null) req.Headers.Add("apikey", who.ApiKey);
        var res = await app.Factory.CreateClient().SendAsync(req);
        var text = await res.Content.ReadAsStringAsync();
        if (!res.IsSuccessStatusCode) return []; // refused: nothing readable
        return JsonSerializer.Deserialize<JsonElement>(text).EnumerateArray().ToDictionary(r => r.GetProperty("id").ToString(), r => r);
    }

    private async Task<List<Follower>> FollowAsync(World w, string table)
    {
        var list = new List<Follower>();
        foreach (var who in w.Callers)
        {
            var q = who.ApiKey is null ? "" : $"?apikey={who.ApiKey}";
            var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{w.P.Id}/rest/{table}/stream{q}", who.Bearer);
            // A credential that can read nothing is refused up front (and GET shows it nothing).
            if (!s.Response.IsSuccessStatusCode)
            {
                Assert.True(s.Response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden, $"{who.Name}: {s.Response.StatusCode}");
                Assert.Empty(await GetAsync(w, table, who));
                await s.DisposeAsync();
                continue;
            }
            list.Add(new Follower(who, s));
        }
        return list;
    }

    /// <summary>After a write: what each follower's GET shows now may be streamed to it.</summary>
    private async Task SeenAsync(World w, string table, List<Follower> followers)
    {
        foreach (var f in followers) f.EverVisible.UnionWith((await GetAsync(w, table, f.Who)).Keys);
    }

    /// <summary>Each follower's rebuilt rows come to equal GET's, every event named a row GET showed, and carried only readable columns.</summary>
    private async Task AssertParityAsync(World w, string table, List<Follower> followers)
    {
        await using var super = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(app.Db.SuperuserConnectionString)
            { Database = PostgresServer.PlatformDatabase }.ConnectionString);
        await super.OpenAsync();
        foreach (var f in followers)
        {
            var readable = new HashSet<string>();
            await using (var cmd = new NpgsqlCommand("SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 " +
                                                     "AND NOT attisdropped AND has_column_privilege($2, attrelid, attnum, 'SELECT')", super))
            {
                cmd.Parameters.Add(new() { Value = $"proj_{w.P.Id}.{table}" });
                cmd.Parameters.Add(new() { Value = f.Who.Role });
                await using var r = await cmd.ExecuteReaderAsync();
                while (await r.ReadAsync()) readable.Add(r.GetString(0));
            }
            var expected = await GetAsync(w, table, f.Who);
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (true)
            {
                foreach (var e in await f.Stream.DrainAsync(TimeSpan.FromMilliseconds(50)))
                {
                    f.Events.Add(e);
                    var rec = e.Data.GetProperty("record");
                    var old = e.Data.GetProperty("old_record");
                    foreach (var image in new[] { rec, old }.Where(i => i.ValueKind == JsonValueKind.Object))
                    {
                        Assert.True(f.EverVisible.Contains(image.GetProperty("id").ToString()),
                            $"{table}: {f.Who.Name} got {e.Type} of row {image.GetProperty("id")}, which GET never showed it");
                        foreach (var col in image.EnumerateObject())
                            Assert.True(readable.Contains(col.Name), $"{table}: {f.Who.Name} got column {col.Name} it may not read");
                    }
                    if (e.Type == "delete") f.Rows.Remove(old.GetProperty("id").ToString());
                    else f.Rows[rec.GetProperty("id").ToString()] = rec;
                }
                var same = f.Rows.Keys.Order().SequenceEqual(expected.Keys.Order()) &&
                           expected.All(kv => f.Rows[kv.Key].GetProperty("title").ToString() == kv.Value.GetProperty("title").ToString());
                if (same) break;
                Assert.True(DateTime.UtcNow < deadline,
                    $"{table}: {f.Who.Name} sees [{string.Join(",", f.Rows.Keys.Order())}] by stream, [{string.Join(",", expected.Keys.Order())}] by GET");
            }
        }
    }

    /// <summary>Writes as the DB_API_KEY: rows of alice, bob and nobody, published or not; updates that move rows in and out of views; deletes.</summary>
    private async Task ExerciseAsync(World w, string table, List<Follower> followers, Func<string, string> owner, bool partitioned = false)
    {
        object Row(int id, string title, string? who, bool published) => partitioned
            ? new { id, k = id % 2, title, user_id = who, published }
            : new { id, title, user_id = who, published };
        var path = $"/rest/{table}";
        var rows = new[]
        {
            Row(1, "alice public", owner(w.Alice), true), Row(2, "alice private", owner(w.Alice), false),
            Row(3, "bob public", owner(w.Bob), true), Row(4, "bob private", owner(w.Bob), false),
            Row(5, "nobody public", null, true), Row(6, "nobody private", null, false),
        };
        foreach (var r in rows)
        {
            await Send(w.P, HttpMethod.Post, path, w.P.ApiKey, null, r);
            await SeenAsync(w, table, followers);
        }
        // In and out of views: publish, unpublish, hand alice's row to bob, retitle.
        foreach (var (filter, body) in new (string, object)[]
                 {
                     ("id=eq.2", new { published = true }), ("id=eq.3", new { published = false }),
                     ("id=eq.1", new { user_id = owner(w.Bob) }), ("id=eq.4", new { title = "bob private, renamed" }),
                 })
        {
            await SeenAsync(w, table, followers); // (rows leaving a view were visible before)
            await Send(w.P, HttpMethod.Patch, $"{path}?{filter}", w.P.ApiKey, null, body);
            await SeenAsync(w, table, followers);
        }
        foreach (var id in new[] { 2, 5, 6 })
            await Send(w.P, HttpMethod.Delete, $"{path}?id=eq.{id}", w.P.ApiKey, null, null);
        await AssertParityAsync(w, table, followers);
        foreach (var f in followers) await f.Stream.DisposeAsync();
    }

    private const string Columns = "id int primary key, title text, user_id uuid, published bool, secret text default 'hidden'";

    [Fact]
    public async Task The_six_switches_give_the_stream_exactly_what_get_gives()
    {
        var w = await WorldAsync();
        await Sql(w, $"create table own_rows ({Columns}); create table public_rows ({Columns}); create table no_owner ({Columns})");
        await Access(w, "own_rows", anonSelect: false);
        await Access(w, "public_rows", anonSelect: true);
        await Access(w, "no_owner", anonSelect: false, owner: null);
        foreach (var t in new[] { "own_rows", "public_rows", "no_owner" })
            await ExerciseAsync(w, t, await FollowAsync(w, t), id => id);
    }

    [Fact]
    public async Task Hand_written_restrictive_and_subquery_policies_decide_the_stream_as_they_decide_get()
    {
        var w = await WorldAsync();
        var user = $"proj_{w.P.Id}_user";
        await Sql(w, $"""
            create table news ({Columns});
            create table team ({Columns});
            create table team_docs ({Columns});
            """);
        await Access(w, "news", anonSelect: true);
        await Access(w, "team", anonSelect: false);
        await Access(w, "team_docs", anonSelect: false);
        // Only published news, for everyone (restrictive); team docs for members of the team, through a subquery.
        await Sql(w, $"""
            create policy only_published on news as restrictive for select using (published);
            insert into team (id, title, user_id) values (1, 'membership', '{w.Alice}');
            create policy members on team_docs for select to {user}
              using (exists (select 1 from team m where m.user_id = nullif(current_setting('request.user_id', true), '')::uuid));
            """);
        await ExerciseAsync(w, "news", await FollowAsync(w, "news"), id => id);
        await ExerciseAsync(w, "team_docs", await FollowAsync(w, "team_docs"), id => id);
    }

    [Fact]
    public async Task Column_grants_text_owners_partitions_and_renames_hold_on_the_stream()
    {
        var w = await WorldAsync();
        var anon = $"proj_{w.P.Id}_anon";
        // A column the anon role may not read: the stream never carries it.
        await Sql(w, $"create table graded ({Columns})");
        await Access(w, "graded", anonSelect: true);
        await Sql(w, $"revoke select on graded from {anon}; grant select (id, title, user_id, published) on graded to {anon}");
        await ExerciseAsync(w, "graded", await FollowAsync(w, "graded"), id => id);

        // A text owner column holding upper-case UUIDs: GET's typed compare finds no own row; nor may the stream.
        await Sql(w, "create table shouting (id int primary key, title text, user_id text, published bool)");
        await Access(w, "shouting", anonSelect: false);
        await ExerciseAsync(w, "shouting", await FollowAsync(w, "shouting"), id => id.ToUpperInvariant());

        // A partitioned table: its partitions' changes reach the parent's subscribers, under the parent's policies.
        await Sql(w, "create table parts (id int, k int, title text, user_id uuid, published bool, primary key (id, k)) partition by list (k); " +
                     "create table parts_0 partition of parts for values in (0); create table parts_1 partition of parts for values in (1)");
        await Access(w, "parts", anonSelect: false);
        await ExerciseAsync(w, "parts", await FollowAsync(w, "parts"), id => id, partitioned: true);

        // A private table renamed to a public table's old name keeps its own (private) rights.
        await Sql(w, $"create table board ({Columns}); create table vault ({Columns})");
        await Access(w, "board", anonSelect: true);
        await Access(w, "vault", anonSelect: false);
        await Sql(w, "drop table board; alter table vault rename to board");
        var access = await w.Owner.GetFromJsonAsync<JsonElement>($"/api/projects/{w.P.Id}/tables/board/access");
        Assert.False(access.GetProperty("anon_select").GetBoolean()); // GET /access agrees with the policies
        var followers = await FollowAsync(w, "board");
        Assert.DoesNotContain(followers, f => f.Who.Name == "anon");
        await ExerciseAsync(w, "board", followers, id => id);
    }
}
