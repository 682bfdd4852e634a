-- examples/ads-pipeline.lua: writes an ad exactly as the original system's
-- live sync does (see docs/TRANSFORM.md, "The original system's pipeline").
--
--   RECONCILE_TRANSFORM=examples/ads-pipeline.lua
--   OPENSEARCH_ID_FIELD=mongo_id        (the default)
--   RECONCILE_WRITE_MODE=upsert         (partial update: embeddings survive)
--
-- The body: mongo_id, the fields below copied as they are (a field the
-- document lacks stays absent), then three reshaped fields. The routing:
-- page_id when it is set, else countrySearchedfor, else the id. "Set" is
-- JavaScript's truthiness, as in the original: nil, null, false, 0, NaN
-- and "" are not set.

local null = reconciler.null

-- copied as they are, in this order
local FIELDS = {
  "ad_archive_id", "library_id", "page_id", "page_name", "advertiser_name",
  "status", "is_active", "started_running_on", "start_date", "scraped_at",
  "permalink_url", "redirected_final_url", "currency", "keywords",
  "countrySearchedfor", "search_country", "country", "region", "platforms",
  "publisher_platform", "creative", "snapshot", "search_query",
  "search_media_type", "search_type", "categories", "page_categories",
  "page_like_count", "end_date", "collation_id", "collation_count",
  "contains_digital_created_media", "contains_sensitive_content",
  "is_profile_page", "page_is_deleted", "page_entity_type", "entity_type",
  "gated_type", "hide_data_status", "is_aaa_eligible",
  "targeted_or_reached_countries", "political_countries",
}

-- the body's key order: mongo_id, the fields, the reshaped ones
local ORDER = { "mongo_id" }
for _, f in ipairs(FIELDS) do ORDER[#ORDER + 1] = f end
ORDER[#ORDER + 1] = "countrySearchedfor_all"
ORDER[#ORDER + 1] = "url-filter"
ORDER[#ORDER + 1] = "url-filter-updated-at"

local ITEM_ORDER = { __order = { "country", "is_active" } }

-- JavaScript's truthiness
local function truthy(v)
  return v ~= nil and v ~= null and v ~= false and v ~= "" and v ~= 0 and v == v
end

-- a sub-document (a table that is not an array)
local function is_object(v)
  return type(v) == "table" and not reconciler.is_array(v)
end

-- a value as JavaScript's String() gives it, for scalars (ObjectIds and
-- dates are text already); integral floats without ".0"
local function text(v)
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^53 then
    return string.format("%d", v)
  elseif type(v) == "number" or type(v) == "boolean" then
    return tostring(v)
  end
  return v
end

-- countrySearchedfor_all: items become {country, is_active}; a string s
-- gives {country = s, is_active = null}; a sub-document gives its country
-- when truthy (else null) and its is_active (null when it has none); other
-- items (numbers, booleans, null, arrays) are dropped. A value that is not
-- an array is copied as it is. (MAPPING.md turns ObjectIds and dates into
-- strings before the script sees them, so such items count as strings
-- here.)
local function countries(list)
  if not reconciler.is_array(list) then
    return list
  end
  local out = reconciler.array()
  for _, item in ipairs(list) do
    if type(item) == "string" then
      out[#out + 1] = setmetatable({ country = item, is_active = null }, ITEM_ORDER)
    elseif is_object(item) then
      local active = item.is_active
      if active == nil then active = null end
      out[#out + 1] = setmetatable({
        country = truthy(item.country) and item.country or null,
        is_active = active,
      }, ITEM_ORDER)
    end
  end
  return out
end

-- url-filter: a sub-document whose url-filter-id (an ObjectId: hex text
-- already) is written as text; null when the document has none
local function url_filter(f)
  if f == nil or f == null then
    return null
  end
  if is_object(f) then
    local id = f["url-filter-id"]
    if id ~= nil and id ~= null then
      f["url-filter-id"] = text(id) -- f is this call's copy: changing it is a copy
    end
  end
  return f
end

function transform(doc)
  -- the listed fields the document has, in ORDER's order
  local body = reconciler.pick(doc, ORDER)
  body.mongo_id = doc._id
  body.countrySearchedfor_all = countries(doc.countrySearchedfor_all)
  body["url-filter"] = url_filter(doc["url-filter"])
  local updated = doc["url-filter-updated-at"]
  if updated == nil then updated = null end
  body["url-filter-updated-at"] = updated

  -- a sub-document or an array is no routing (JavaScript would route by
  -- its String(), "[object Object]" or the items joined): passed over, as
  -- OPENSEARCH_ROUTING_FIELD's rule passes over them, so such a document
  -- is still indexed rather than failed
  local routing = doc._id
  if truthy(doc.page_id) and type(doc.page_id) ~= "table" then
    routing = doc.page_id
  elseif truthy(doc.countrySearchedfor) and type(doc.countrySearchedfor) ~= "table" then
    routing = doc.countrySearchedfor
  end
  return body, routing
end
