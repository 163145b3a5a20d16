// The Data tab's state (DataTabState) without a browser or a database: paging, selection, cell edits, inserts and the
// live merge of changes from elsewhere, against a stand-in for TableBrowser.
using System.Text.Json;
using DbStudio.Core.Catalog;
using DbStudio.Core.Panel;
using DbStudio.Core.Rest;
using DbStudio.Core.Streams;

namespace DbStudio.Tests.Unit;

public class DataTabStateTests
{
    private static readonly TableInfo Notes = new()
    {
        Schema = "proj_x", Name = "notes", Oid = 1, Kind = 'r',
        Columns =
        [
            new ColumnInfo("id", "integer", 23, true, null, 1, false),
            new ColumnInfo("title", "text", 25, false, null, null, false),
            new ColumnInfo("meta", "jsonb", 3802, false, null, null, false),
        ],
    };

    private static JsonElement Row(int id, string title) => JsonSerializer.SerializeToElement(new { id, title, meta = new { a = 1 } });

    /// <summary>Pages of a table of <c>rows</c> rows; records what was asked.</summary>
    private sealed class FakeData(int rows) : ITableData
    {
        public readonly List<(int Page, string? OrderBy, bool Descending, DataFilter? Filter)> Asked = [];
        public Func<string?, EditResult> OnUpdate = _ => new EditResult(null, null);
        public Func<IReadOnlyDictionary<string, string?>, EditResult> OnInsert = _ => new EditResult(Row(999, "new"), null);
        public int Total = rows;

        public Task<DataPage?> PageAsync(string projectId, string table, int page, string? orderBy = null, bool descending = false,
            CancellationToken ct = default, DataFilter? filter = null, Core.Auth.RestCaller? caller = null)
        {
            Asked.Add((page, orderBy, descending, filter));
            var shown = Enumerable.Range(page * TableBrowser.PageSize + 1, Math.Max(0, Math.Min(TableBrowser.PageSize, Total - page * TableBrowser.PageSize)))
                .Select(i => Row(i, $"note {i}")).ToList();
            return Task.FromResult<DataPage?>(new DataPage(Notes, shown, Total, false, null));
        }

        public readonly List<(int After, bool Backwards)> Keyset = [];

        public Task<DataPage?> PageAfterAsync(string projectId, string table, JsonElement boundary, bool backwards, bool descending = false,
            DataFilter? filter = null, Core.Auth.RestCaller? caller = null, CancellationToken ct = default)
        {
            var id = boundary.GetProperty("id").GetInt32();
            Keyset.Add((id, backwards));
            var ids = backwards ? Enumerable.Range(Math.Max(1, id - TableBrowser.PageSize), Math.Min(TableBrowser.PageSize, id - 1))
                : Enumerable.Range(id + 1, Math.Max(0, Math.Min(TableBrowser.PageSize, Total - id)));
            return Task.FromResult<DataPage?>(new DataPage(Notes, [.. ids.Select(i => Row(i, $"note {i}"))], null, false, null));
        }

        public Task<EditResult> UpdateCellAsync(string projectId, TableInfo table, JsonElement row, string column, JsonElement original,
            string? newValue, CancellationToken ct = default) => Task.FromResult(OnUpdate(newValue));

        public Func<IReadOnlyDictionary<string, string?>, EditResult> OnUpdateRow = v => new EditResult(null, null);

        public Task<EditResult> UpdateRowAsync(string projectId, TableInfo table, JsonElement row, IReadOnlyDictionary<string, string?> changes,
            CancellationToken ct = default) => Task.FromResult(OnUpdateRow(changes));

        public Task<EditResult> InsertAsync(string projectId, TableInfo table, IReadOnlyDictionary<string, string?> values,
            CancellationToken ct = default) => Task.FromResult(OnInsert(values));

        public Task<(int Deleted, RestError? Error)> DeleteAsync(string projectId, TableInfo table, IEnumerable<JsonElement> rows,
            CancellationToken ct = default) => Task.FromResult((rows.Count(), (RestError?)null));
    }

    [Fact]
    public async Task Pages_sorting_and_filters_go_back_to_the_first_page_and_say_where_they_are()
    {
        var data = new FakeData(rows: 120);
        var s = new DataTabState(data, "x");
        Assert.True(await s.ShowAsync("notes"));
        Assert.False(await s.ShowAsync("notes")); // already shown
        Assert.Equal(3, s.PageCount);
        Assert.True(s.HasNext);
        Assert.Equal("Rows 1–50 of 120", s.RangeText());
        await s.GoAsync(2);
        Assert.False(s.HasNext);
        Assert.Equal("Rows 101–120 of 120", s.RangeText());
        await s.SortAsync("title");
        await s.SortAsync("title"); // the same column again: descending
        Assert.Equal((0, "title", true, null), data.Asked[^1]);
        s.Drafts[0].Value = "7";
        await s.ApplyFilterAsync(); // no column chosen: the first
        Assert.Equal(new TableBrowser.SimpleFilter("id", "eq", "7"), Assert.Single(data.Asked[^1].Filter!.Conditions));
        s.AddCondition();
        s.Drafts[1].Column = "title";
        s.Drafts[1].Op = "not.is.null";
        s.Drafts[1].Value = "ignored";
        s.Any = true;
        await s.ApplyFilterAsync();
        Assert.Equal([new("id", "eq", "7"), new("title", "not.is.null", null)], data.Asked[^1].Filter!.Conditions);
        Assert.True(data.Asked[^1].Filter!.Any);
        await s.ClearFilterAsync();
        Assert.Null(data.Asked[^1].Filter);
        Assert.Single(s.Drafts);
        Assert.False(s.Any);
    }

    [Fact]
    public async Task Changes_from_elsewhere_are_merged_into_the_page_and_the_selection_and_edit_follow_their_rows()
    {
        var data = new FakeData(rows: 3);
        var s = new DataTabState(data, "x");
        await s.ShowAsync("notes");
        s.Toggle(0, true);
        s.Toggle(2, true);
        s.StartEdit(2, Notes.Columns[1]);
        await s.ApplyAsync(new RowChange(ChangeKind.Insert, Row(4, "from REST"), null));
        Assert.Equal(4, s.Rows.Count);
        Assert.Equal(4, s.Page!.Total);
        await s.ApplyAsync(new RowChange(ChangeKind.Update, Row(1, "renamed"), Row(1, "note 1")));
        Assert.Equal("renamed", s.Rows[0].GetProperty("title").GetString());
        await s.ApplyAsync(new RowChange(ChangeKind.Delete, null, Row(2, "note 2")));
        Assert.Equal([1, 3, 4], s.Rows.Select(r => r.GetProperty("id").GetInt32()));
        Assert.Equal([0, 1], s.Selected.Order()); // row 3 moved up with its checkbox
        Assert.Equal(1, s.EditRow); // and its edit
        await s.ApplyAsync(new RowChange(ChangeKind.Delete, null, Row(3, "note 3")));
        Assert.Null(s.EditRow);
        Assert.Equal("The row you were editing was deleted by someone else.", s.Notice);
        var asked = data.Asked.Count;
        await s.ApplyAsync(new RowChange(null, null, null)); // fell behind: reload
        Assert.Equal(asked + 1, data.Asked.Count);
    }

    [Fact]
    public async Task A_cell_edit_shows_what_is_wrong_with_the_input_or_someone_elses_change()
    {
        var data = new FakeData(rows: 2);
        var s = new DataTabState(data, "x");
        await s.ShowAsync("notes");
        s.StartEdit(0, Notes.Columns[2]);
        Assert.Equal("""{"a":1}""", s.EditText); // JSON as JSON
        data.OnUpdate = _ => new EditResult(null, null, Invalid: "Not valid JSON: …");
        await s.SaveCellAsync(0, Notes.Columns[2], "{bad");
        Assert.Equal("Not valid JSON: …", s.EditError);
        Assert.Equal(0, s.EditRow); // still editing

        data.OnUpdate = _ => new EditResult(null, new RestError(TableBrowser.ConflictCode, "Someone else changed this value; it now shows theirs.", null, null),
            Row(1, "theirs"));
        await s.SaveCellAsync(0, Notes.Columns[2], "{}");
        Assert.Null(s.EditRow);
        Assert.Equal("theirs", s.Rows[0].GetProperty("title").GetString());
        Assert.StartsWith("Someone else changed", s.Notice);

        s.StartEdit(1, Notes.Columns[1]);
        data.OnUpdate = v => new EditResult(Row(2, v!), null);
        await s.SaveCellAsync(1, Notes.Columns[1], "saved");
        Assert.Equal("saved", s.Rows[1].GetProperty("title").GetString());
        Assert.Null(s.EditRow);
    }

    [Fact]
    public async Task Insert_leaves_empty_inputs_to_their_defaults_and_delete_takes_the_selected_rows()
    {
        var data = new FakeData(rows: 2);
        var s = new DataTabState(data, "x");
        await s.ShowAsync("notes");
        s.StartInsert();
        Assert.True(s.Form!.IsInsert);
        s.Form.Text["id"] = "";
        s.Form.Text["title"] = "hello";
        s.Form.SetNull("meta", true);
        IReadOnlyDictionary<string, string?>? sent = null;
        data.OnInsert = v => { sent = v; return new EditResult(null, new RestError("23502", "null value", null, null)); };
        Assert.False(await s.SaveFormAsync());
        Assert.Equal(["title", "meta"], sent!.Keys);
        Assert.Null(sent["meta"]); // NULL, not the default
        Assert.Equal("23502: null value", s.Form!.Error);
        data.OnInsert = _ => new EditResult(Row(3, "hello"), null);
        Assert.True(await s.SaveFormAsync());
        Assert.Null(s.Form);

        s.Toggle(0, true);
        s.Toggle(1, true);
        s.ConfirmDelete = true;
        Assert.Equal(2, await s.DeleteSelectedAsync());
        Assert.Empty(s.Selected);
        Assert.False(s.ConfirmDelete);
    }

    [Fact]
    public async Task The_side_form_shows_every_column_and_sends_only_what_changed()
    {
        var data = new FakeData(rows: 2);
        var s = new DataTabState(data, "x");
        await s.ShowAsync("notes");
        s.OpenRow(1);
        var form = s.Form!;
        Assert.False(form.IsInsert);
        Assert.Equal(["id", "title", "meta"], form.Columns.Select(c => c.Name));
        Assert.Equal("note 2", form.Text["title"]);
        Assert.Equal("{\n  \"a\": 1\n}", form.Text["meta"].ReplaceLineEndings("\n")); // JSON indented for the large editor
        Assert.Empty(form.Values()); // nothing changed yet

        form.Text["title"] = "edited";
        form.SetNull("meta", true);
        IReadOnlyDictionary<string, string?>? sent = null;
        data.OnUpdateRow = v => { sent = v; return new EditResult(null, null, Invalid: "meta: Not valid JSON"); };
        Assert.False(await s.SaveFormAsync());
        Assert.Equal("meta: Not valid JSON", s.Form!.Error);
        Assert.Equal(new Dictionary<string, string?> { ["title"] = "edited", ["meta"] = null }, sent);

        data.OnUpdateRow = _ => new EditResult(Row(2, "edited"), null);
        Assert.True(await s.SaveFormAsync());
        Assert.Null(s.Form);
        Assert.Equal("edited", s.Rows[1].GetProperty("title").GetString());

        // Someone else's change meanwhile: theirs is shown, the form closes with the notice.
        s.OpenRow(0);
        s.Form!.Text["title"] = "mine";
        data.OnUpdateRow = _ => new EditResult(null, new RestError(TableBrowser.ConflictCode, "Someone else changed this value; it now shows theirs.", null, null),
            Row(1, "theirs"));
        Assert.False(await s.SaveFormAsync());
        Assert.Null(s.Form);
        Assert.Equal("theirs", s.Rows[0].GetProperty("title").GetString());
        Assert.NotNull(s.Notice);
    }

    [Fact]
    public async Task Tab_saves_a_changed_cell_and_moves_to_the_next_one_across_rows_and_stays_when_refused()
    {
        var data = new FakeData(rows: 2);
        var s = new DataTabState(data, "x");
        await s.ShowAsync("notes");
        var updates = 0;
        data.OnUpdate = v => { updates++; return new EditResult(Row(1, v!), null); };

        s.StartEdit(0, Notes.Columns[1]);
        await s.MoveAsync("note 1", backwards: false); // unchanged: nothing saved, on to the next cell
        Assert.Equal(0, updates);
        Assert.Equal((0, "meta"), (s.EditRow, s.EditColumn));
        await s.MoveAsync(s.EditText, backwards: false); // past the last column: the next row's first
        Assert.Equal((1, "id"), (s.EditRow, s.EditColumn));
        await s.MoveAsync(s.EditText, backwards: true);
        await s.MoveAsync(s.EditText, backwards: true);
        Assert.Equal((0, "title"), (s.EditRow, s.EditColumn));

        await s.MoveAsync("typed", backwards: false); // changed: saved, then moved
        Assert.Equal(1, updates);
        Assert.Equal("typed", s.Rows[0].GetProperty("title").GetString());
        Assert.Equal((0, "meta"), (s.EditRow, s.EditColumn));

        data.OnUpdate = _ => new EditResult(null, new RestError("22P02", "invalid input syntax for type json", null, null));
        await s.MoveAsync("{bad", backwards: false); // refused: stays, with PostgreSQL's message
        Assert.Equal((0, "meta"), (s.EditRow, s.EditColumn));
        Assert.Equal("22P02: invalid input syntax for type json", s.EditError);

        Assert.Null(s.NextCell(1, "meta", backwards: false)); // the page's last cell
        Assert.Null(s.NextCell(0, "id", backwards: true));
    }

    [Fact]
    public void A_referenced_row_is_labelled_by_a_name_like_column_else_its_first_text_column_else_its_key()
    {
        static TableInfo Table(params ColumnInfo[] columns) => new() { Schema = "proj_x", Name = "t", Oid = 2, Kind = 'r', Columns = columns };
        var id = new ColumnInfo("id", "integer", 23, true, null, 1, false);
        Assert.Equal("title", References.LabelOf(Table(id, new("body", "text", 25, false, null, null, false), new("title", "text", 25, false, null, null, false)), "id"));
        Assert.Equal("body", References.LabelOf(Table(id, new("n", "integer", 23, false, null, null, false), new("body", "text", 25, false, null, null, false)), "id"));
        Assert.Equal("id", References.LabelOf(Table(id, new("n", "integer", 23, false, null, null, false)), "id"));
    }

    [Fact]
    public void A_filter_goes_into_the_url_as_postgrest_spells_it_and_comes_back()
    {
        var filter = new DataFilter(
        [
            new("title", "contains", "a.b"), new("meta", "cs", "{\"a\":1}"), new("id", "not.in", "(1,2)"), new("title", "not.is.null", null),
            new("my.col", "is", "true"),
        ], Any: true);
        var query = filter.ToQuery().ToList();
        Assert.Equal(["title.contains.a.b", "meta.cs.{\"a\":1}", "id.not.in.(1,2)", "title.not.is.null", "my.col.is.true"], query);
        Assert.Equal(filter.Conditions, DataFilter.FromQuery(query, any: true)!.Conditions);
        Assert.Null(DataFilter.FromQuery(["title.nope.x"], false)); // not an operator
        Assert.Null(DataFilter.FromQuery([], false));
        Assert.All(new[] { "eq", "like", "ilike", "match", "imatch", "in", "is", "isdistinct", "cs", "cd", "ov", "fts", "plfts", "phfts", "wfts",
            "sl", "sr", "nxr", "nxl", "adj" }, op =>
        {
            Assert.Contains(TableBrowser.SimpleFilter.Operators, o => o.Op == op);
            Assert.Contains(TableBrowser.SimpleFilter.Operators, o => o.Op == "not." + op);
        });
    }

    [Fact]
    public async Task Next_and_previous_use_the_primary_key_and_only_a_typed_jump_or_another_sort_uses_offset()
    {
        var data = new FakeData(rows: 180);
        var s = new DataTabState(data, "x");
        await s.ShowAsync("notes");
        await s.NextAsync();
        await s.NextAsync();
        Assert.Equal([(50, false), (100, false)], data.Keyset);
        Assert.Single(data.Asked); // only the first page by OFFSET
        Assert.Equal("Rows 101–150 of 180", s.RangeText()); // the total kept
        Assert.Equal(101, s.Rows[0].GetProperty("id").GetInt32());
        await s.NextAsync();
        Assert.Equal("Rows 151–180 of 180", s.RangeText());
        Assert.False(s.HasNext);
        await s.PreviousAsync();
        Assert.Equal((151, true), data.Keyset[^1]);
        Assert.Equal(101, s.Rows[0].GetProperty("id").GetInt32());
        await s.PreviousAsync();
        await s.PreviousAsync(); // back at the first page: loaded as such
        Assert.Equal(0, s.PageIndex);
        Assert.Equal(2, data.Asked.Count);

        await s.GoAsync(3); // a typed jump: OFFSET
        Assert.Equal(3, data.Asked[^1].Page);
        var keyset = data.Keyset.Count;
        await s.SortAsync("title"); // another column: OFFSET for next too
        await s.NextAsync();
        Assert.Equal(keyset, data.Keyset.Count);
        Assert.Equal((1, "title", false), (data.Asked[^1].Page, data.Asked[^1].OrderBy, data.Asked[^1].Descending));
    }
}
